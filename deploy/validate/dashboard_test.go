package validate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// freePort returns a loopback address nobody listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// liveMetrics starts, on a NATS of its own, one fleet analyzer (which
// creates the input stream MCIV_IN) and then `mciv up` with every part, the
// analyzer partitioned and failover on (dry run), its collector publishing
// to MCIV_IN; it returns the metric names of that `mciv up`'s /metrics.
func liveMetrics(t *testing.T) map[string]bool {
	t.Helper()
	bin := mcivBinary(t)
	natsURL := startNATS(t, bin)
	start := func(name, part, cfg string) {
		dir := t.TempDir()
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(fmt.Sprintf("data_dir: %s\n", filepath.Join(dir, "data"))+cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, part, "--config", path)
		cmd.Env = append(os.Environ(), "MCIV_NATS_URL=", "MCIV_SLACK_TOKEN=", "MCIV_SLACK_CHANNEL=")
		logf, _ := os.Create(filepath.Join(dir, "mciv.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			_ = cmd.Wait()
			logf.Close()
			if t.Failed() {
				log, _ := os.ReadFile(filepath.Join(dir, "mciv.log"))
				t.Logf("%s log:\n%s", name, log)
			}
		})
	}
	fleet := fmt.Sprintf("nats: {url: %q}\nanalyzer: {partitioned: true}\n", natsURL)
	first := freePort(t)
	start("first-analyzer", "analyzer", fmt.Sprintf("host: validate-a\nmetrics: {listen: %q}\n", first)+fleet)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := probeGet("http://" + first + "/readyz")
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first fleet analyzer is not ready within 30 s: %d %s %v", code, body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	metrics := freePort(t)
	start("up", "up", fmt.Sprintf("host: validate\ncluster: validate\nmetrics: {listen: %q}\n", metrics)+fleet+
		"failover: {enabled: true, dry_run: true, clusters: {validate: {endpoints: [\"http://127.0.0.1:1\"]}}}\n")

	// The metrics of the fleet are those of both processes (the host's
	// partition is owned by either analyzer).
	// Every part is up once the analyzer's, notifier's and actuator's
	// metrics are there, the collector has tried each hook
	// (mciv_collector_hook_up) and published into MCIV_IN, and the
	// analyzer evaluated a batch of this host.
	want := []string{"mciv_analyzer_rules_loaded", "mciv_notifier_queue_depth", "mciv_collector_batches_published_total",
		"mciv_collector_hook_up", "mciv_collector_stream_published_total", "mciv_failover_decisions_total", "mciv_analyzer_batches_missed_total"}
	deadline = time.Now().Add(60 * time.Second)
	for {
		names, err := scrape("http://" + metrics + "/metrics")
		if other, oerr := scrape("http://" + first + "/metrics"); oerr == nil && err == nil {
			maps.Copy(names, other)
		}
		missing := slices.DeleteFunc(slices.Clone(want), func(n string) bool { return names[n] })
		if err == nil && len(missing) == 0 {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("mciv up did not serve %v within 60 s (last error %v)", missing, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func scrape(url string) (map[string]bool, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			names[l[:i]] = true
		}
	}
	return names, sc.Err()
}

// promqlKeywords are identifiers of PromQL that are not metric names.
var promqlKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"}

// promqlAggregations are PromQL's aggregation operators.
var promqlAggregations = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}

// metricNames returns the metric names a PromQL expression selects: the
// identifiers outside label matchers, ranges and strings that do not call
// a function and are no keyword, label list or number.
func metricNames(expr string) []string {
	var out []string
	rs := []rune(expr)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == '"' || r == '\'' || r == '`':
			j := i + 1
			for j < len(rs) && rs[j] != r {
				if rs[j] == '\\' && r != '`' {
					j++
				}
				j++
			}
			i = j + 1
		case r == '{' || r == '[':
			closer := map[rune]rune{'{': '}', '[': ']'}[r]
			j := i + 1
			for j < len(rs) && rs[j] != closer {
				if rs[j] == '"' || rs[j] == '\'' || rs[j] == '`' {
					q := rs[j]
					j++
					for j < len(rs) && rs[j] != q {
						if rs[j] == '\\' {
							j++
						}
						j++
					}
				}
				j++
			}
			i = j + 1
		case unicode.IsDigit(r) || r == '.':
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '.' || rs[j] == '_') {
				j++
			}
			i = j
		case r == '$':
			j := i + 1
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '_') {
				j++
			}
			i = j
		case unicode.IsLetter(r) || r == '_' || r == ':':
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || rs[j] == '_' || rs[j] == ':') {
				j++
			}
			word := string(rs[i:j])
			k := j
			for k < len(rs) && unicode.IsSpace(rs[k]) {
				k++
			}
			switch {
			case slices.Contains(promqlKeywords, strings.ToLower(word)):
				if lw := strings.ToLower(word); lw != "bool" && lw != "and" && lw != "or" && lw != "unless" && lw != "offset" && k < len(rs) && rs[k] == '(' {
					// A label list: by (a, b), on (x), group_left (y).
					for k < len(rs) && rs[k] != ')' {
						k++
					}
					j = k + 1
				}
			case k < len(rs) && rs[k] == '(':
				// A function or aggregation.
			case slices.Contains(promqlAggregations, word) && (strings.HasPrefix(string(rs[k:]), "by") || strings.HasPrefix(string(rs[k:]), "without")):
				// An aggregation with its labels first: sum by (a) (...).
			default:
				out = append(out, word)
			}
			i = j
		default:
			i++
		}
	}
	return out
}

// labelValuesMetric is the metric of a Grafana label_values(metric, label) query.
var labelValuesMetric = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// exported reports whether name is a metric of names, histogram and summary
// series included.
func exported(names map[string]bool, name string) bool {
	if names[name] {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && (names[base+"_bucket"] || names[base+"_count"]) {
			return names[name]
		}
	}
	return false
}

type dashboard struct {
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type dashPanel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (instance, kind) (rate(a_total{x="b c",y=~"$v"}[$__rate_interval]))`: {"a_total"},
		`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) > 5`:             {"h_bucket"},
		`a / on (x) group_left (y) b > bool 1e3`:                                     {"a", "b"},
		`absent(up_metric)`:                                                          {"up_metric"},
		`a == 0 unless b offset 5m`:                                                  {"a", "b"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

// TestDashboardQueries checks that every metric every panel of
// deploy/grafana/mciv.json queries is exported by a running `mciv up`, and
// so are the metrics of the chart's PrometheusRule.
func TestDashboardQueries(t *testing.T) {
	names := liveMetrics(t)
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "mciv.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("mciv.json: %v", err)
	}
	check := func(where, expr string, metrics []string) {
		if len(metrics) == 0 {
			t.Errorf("%s: %q names no metric", where, expr)
		}
		for _, m := range metrics {
			if !exported(names, m) {
				t.Errorf("%s: %q: mciv up does not export %s", where, expr, m)
			}
		}
	}
	queries := 0
	var walkPanels func([]dashPanel)
	walkPanels = func(ps []dashPanel) {
		for _, p := range ps {
			if p.Type != "row" && p.Type != "text" && len(p.Targets) == 0 {
				t.Errorf("panel %d %q has no query", p.ID, p.Title)
			}
			for _, tg := range p.Targets {
				queries++
				check(fmt.Sprintf("panel %d %q", p.ID, p.Title), tg.Expr, metricNames(tg.Expr))
			}
			walkPanels(p.Panels)
		}
	}
	walkPanels(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := fmt.Sprint(v.Query)
		if m, ok := v.Query.(map[string]any); ok {
			q = fmt.Sprint(m["query"])
		}
		mm := labelValuesMetric.FindStringSubmatch(q)
		if mm == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q)
			continue
		}
		check("variable "+v.Name, q, []string{mm[1]})
	}
	if queries < 10 {
		t.Errorf("only %d queries in the dashboard", queries)
	}

	// The chart's PrometheusRule, rendered.
	objs := decodeAll(t, render(t, map[string]any{"monitoring": map[string]any{"prometheusRule": map[string]any{"enabled": true}}}))
	rules := 0
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		var pr struct {
			Kind string `json:"kind"`
			Spec struct {
				Groups []struct {
					Rules []struct {
						Alert string `json:"alert"`
						Expr  any    `json:"expr"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"spec"`
		}
		_ = yaml.Unmarshal(raw, &pr)
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				rules++
				expr := fmt.Sprint(r.Expr)
				check("PrometheusRule "+r.Alert, expr, metricNames(expr))
			}
		}
	}
	if rules == 0 {
		t.Error("the PrometheusRule has no rules")
	}
}
