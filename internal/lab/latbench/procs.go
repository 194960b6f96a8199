package latbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mciv/mciv/internal/lab/labproc"
)

const (
	// nodeExporterPort is where node_exporter listens, on the namespace's
	// end of the veth pair.
	nodeExporterPort = 9100
	// startTimeout bounds each process's start.
	startTimeout = 60 * time.Second
	// stopGrace is how long a process may take to stop on SIGTERM.
	stopGrace = 10 * time.Second
)

// Proc is a process the benchmark started, with its output in a log file.
type Proc struct {
	name string
	log  string
	p    *labproc.Process
	f    *os.File
}

// startProc starts cmd with its output in dir/name.log and waits until
// probe succeeds.
func startProc(ctx context.Context, dir, name string, cmd *exec.Cmd, probe func(context.Context) error) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("latbench: %s log: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	p, err := labproc.Start(cmd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("latbench: %s: %w", name, err)
	}
	pr := &Proc{name: name, log: logPath, p: p, f: f}
	if err := p.WaitReady(ctx, startTimeout, probe); err != nil {
		pr.Stop()
		return nil, fmt.Errorf("latbench: %s: %w; its log ends:\n%s", name, err, pr.tail())
	}
	return pr, nil
}

// Stop stops the process (SIGTERM, then SIGKILL after a grace period).
func (p *Proc) Stop() {
	_ = p.p.Stop(syscall.SIGTERM, stopGrace)
	p.f.Close()
}

func (p *Proc) tail() string {
	b, _ := os.ReadFile(p.log)
	return labproc.Tail(b)
}

// httpOK is a probe: GET url answers 200 and its body contains want.
func httpOK(url, want string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		body, err := get(ctx, url)
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), want) {
			return fmt.Errorf("GET %s: no %q yet", url, want)
		}
		return nil
	}
}

// StartNodeExporter runs node_exporter inside the lab's namespace, on its
// end of the veth pair, with only the netstat collector: it then reads the
// namespace's /proc/net/netstat and /proc/net/snmp, whose Tcp RetransSegs
// counts the workload's retransmits. It returns the scrape target.
func StartNodeExporter(ctx context.Context, dir string, lab *NetLab) (*Proc, string, error) {
	target := fmt.Sprintf("%s:%d", lab.NSAddr(), nodeExporterPort)
	cmd := lab.Command(ctx, "prometheus-node-exporter", "--web.listen-address="+target,
		"--collector.disable-defaults", "--collector.netstat")
	p, err := startProc(ctx, dir, "node-exporter", cmd, httpOK("http://"+target+"/metrics", "node_netstat_Tcp_RetransSegs"))
	return p, target, err
}

// PromStack is Prometheus and Alertmanager running one setting.
type PromStack struct {
	Setting            PromSetting
	prom, alertmanager *Proc
	promURL            string
}

// StartPromStack starts Alertmanager (sending to hook) and Prometheus
// (scraping target) for setting s, each with its files and logs in
// dir/<s.Name>, and waits until Prometheus has scraped the target.
func StartPromStack(ctx context.Context, dir string, s PromSetting, target, hook string) (*PromStack, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, s.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("latbench: %w", err)
	}
	amPort, err := labproc.FreePort()
	if err != nil {
		return nil, err
	}
	promPort, err := labproc.FreePort()
	if err != nil {
		return nil, err
	}
	write := func(name, text string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, []byte(text), 0o600)
	}
	amConf, err := write("alertmanager.yml", s.AlertmanagerConfig(hook))
	if err != nil {
		return nil, fmt.Errorf("latbench: %w", err)
	}
	rules, err := write("rules.yml", s.RulesFile())
	if err != nil {
		return nil, fmt.Errorf("latbench: %w", err)
	}
	amAddr := fmt.Sprintf("127.0.0.1:%d", amPort)
	promConf, err := write("prometheus.yml", s.PrometheusConfig(target, amAddr, rules))
	if err != nil {
		return nil, fmt.Errorf("latbench: %w", err)
	}
	am, err := startProc(ctx, dir, "alertmanager", exec.CommandContext(ctx, "prometheus-alertmanager",
		"--config.file="+amConf, "--storage.path="+filepath.Join(dir, "am-data"),
		"--web.listen-address="+amAddr, "--cluster.listen-address="),
		httpOK("http://"+amAddr+"/-/ready", ""))
	if err != nil {
		return nil, err
	}
	promAddr := fmt.Sprintf("127.0.0.1:%d", promPort)
	st := &PromStack{Setting: s, alertmanager: am, promURL: "http://" + promAddr}
	st.prom, err = startProc(ctx, dir, "prometheus", exec.CommandContext(ctx, "prometheus",
		"--config.file="+promConf, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr),
		st.scraped)
	if err != nil {
		am.Stop()
		return nil, err
	}
	return st, nil
}

// scraped succeeds once the rule's rate has a value: the target was
// scraped over a whole window.
func (st *PromStack) scraped(ctx context.Context) error {
	q := strings.Split(st.Setting.Expr(), " >")[0]
	n, err := st.query(ctx, q)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no rate yet")
	}
	return nil
}

// query runs an instant query and returns how many series it returned.
func (st *PromStack) query(ctx context.Context, q string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.promURL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct{ Result []json.RawMessage }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, fmt.Errorf("query %s: %w", q, err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query %s: status %q", q, r.Status)
	}
	return len(r.Data.Result), nil
}

// Stop stops Prometheus, then Alertmanager.
func (st *PromStack) Stop() {
	st.prom.Stop()
	st.alertmanager.Stop()
}

// MCIV is `mciv up` running with its default rules, its collector watching
// the lab's namespace, and Slack pointed at a fake.
type MCIV struct {
	proc *Proc
	// NATSURL is its embedded NATS server.
	NATSURL string
}

// MCIVSlack is where mciv posts: a Slack-compatible Web API.
type MCIVSlack struct{ URL, Token, Channel string }

// MCIVConfig returns the configuration file the benchmark runs mciv with:
// defaults everywhere but the embedded NATS's and metrics' ports, the data
// directory, the namespace to watch and Slack.
func MCIVConfig(dataDir, netns string, natsPort, metricsPort int, slack MCIVSlack) string {
	return fmt.Sprintf(`# written by the mciv latency benchmark: default rules and timings
cluster: bench
host: bench-db
data_dir: %q
nats:
  listen: "127.0.0.1:%d"
metrics:
  listen: "127.0.0.1:%d"
collector:
  netns: %q
slack:
  token: %q
  channel: %q
  api_url: %q
`, dataDir, natsPort, metricsPort, netns, slack.Token, slack.Channel, slack.URL)
}

// StartMCIV runs `bin up` with MCIVConfig and waits until its collector has
// published a batch.
func StartMCIV(ctx context.Context, bin, dir string, lab *NetLab, slack MCIVSlack) (*MCIV, error) {
	natsPort, err := labproc.FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := labproc.FreePort()
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "mciv")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("latbench: %w", err)
	}
	conf := filepath.Join(dir, "mciv.yaml")
	if err := os.WriteFile(conf, []byte(MCIVConfig(filepath.Join(dir, "data"), lab.Path(), natsPort, metricsPort, slack)), 0o600); err != nil {
		return nil, fmt.Errorf("latbench: %w", err)
	}
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	p, err := startProc(ctx, dir, "mciv", exec.CommandContext(ctx, bin, "up", "--config", conf),
		func(ctx context.Context) error {
			if err := httpOK(metrics, "mciv_collector_batches_published_total")(ctx); err != nil {
				return err
			}
			return counterPositive(ctx, metrics, "mciv_collector_batches_published_total")
		})
	if err != nil {
		return nil, err
	}
	return &MCIV{proc: p, NATSURL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort)}, nil
}

// Stop stops mciv.
func (m *MCIV) Stop() { m.proc.Stop() }

// counterPositive succeeds when a sample of the metric name is above 0.
func counterPositive(ctx context.Context, url, name string) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && v > 0 {
			return nil
		}
	}
	return fmt.Errorf("%s not above 0 yet", name)
}

// get returns the body (at most 4 MiB) of GET url, and an error unless it
// answered 200.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}
