package fleetlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/labproc"
)

// BuildMciv builds the mciv binary of the module the test runs in
// (`go build ./cmd/mciv`) into dir and returns its path.
func BuildMciv(ctx context.Context, dir string) (string, error) {
	goTool := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "mciv")
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/mciv")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mciv: %w\n%s", err, labproc.Tail(out))
	}
	return bin, nil
}

// Part is one mciv part (`mciv analyzer|notifier --config FILE`) running
// as a child process, with its own /metrics.
type Part struct {
	// Name names it in logs; Kind is the subcommand.
	Name, Kind string
	// MetricsURL is its /metrics.
	MetricsURL string

	bin, conf, log string
	proc           *labproc.Process
}

// readyLine is what each kind of part logs once it runs.
var readyLine = map[string]string{
	"analyzer": "analyzer running",
	"notifier": "notifier starting",
}

// StartPart writes config (YAML without a metrics section: StartPart
// adds one on a free port) and starts `bin kind --config` with it,
// waiting until /metrics answers. The process is SIGKILLed when the test
// ends.
func StartPart(ctx context.Context, t testing.TB, bin, kind, name, config string) *Part {
	t.Helper()
	port, err := labproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &Part{Name: name, Kind: kind, bin: bin,
		conf:       filepath.Join(dir, name+".yaml"),
		log:        filepath.Join(dir, name+".log"),
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", port)}
	config += fmt.Sprintf("\nmetrics: {listen: \"127.0.0.1:%d\"}\n", port)
	if err := os.WriteFile(p.conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", p.Name, p.Log(60))
			SaveLog(t, p.log)
		}
	})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// Start starts the part (again, after Kill) and waits until it logs that
// it runs and serves /metrics. A part that exits first (a bus too busy to
// create its streams in time, say) is started again, twice at most, as
// systemd's Restart= would.
func (p *Part) Start(ctx context.Context) error {
	var err error
	for range 3 {
		if err = p.start(ctx); err == nil {
			return nil
		}
		p.Kill()
	}
	return err
}

func (p *Part) start(ctx context.Context) error {
	var from int64
	if fi, err := os.Stat(p.log); err == nil {
		from = fi.Size()
	}
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s log: %w", p.Name, err)
	}
	fmt.Fprintf(lf, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, "--log-level", "debug", p.Kind, "--config", p.conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = filepath.Dir(p.conf) // its own ./data (the analyzer's outbox journal), kept across restarts
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	proc, err := labproc.Start(cmd)
	_ = lf.Close() // the child holds its own descriptor
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	p.proc = proc
	return proc.WaitReady(ctx, time.Minute, func(ctx context.Context) error {
		if line, ok := readyLine[p.Kind]; ok {
			data, _ := os.ReadFile(p.log)
			if int64(len(data)) < from || !strings.Contains(string(data[from:]), line) {
				return fmt.Errorf("%s has not logged %q yet", p.Name, line)
			}
		}
		_, err := p.Metrics(ctx)
		return err
	})
}

// SaveLog copies the file at path into the directory named by
// $MCIV_LAB_LOGDIR, if set, so that the logs of a failed run outlive its
// temporary directories.
func SaveLog(t testing.TB, path string) {
	dir := os.Getenv("MCIV_LAB_LOGDIR")
	if dir == "" {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("saving log: %v", err)
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("saving log: %v", err)
		return
	}
	dst := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Logf("saving log: %v", err)
		return
	}
	t.Logf("log saved to %s", dst)
}

// Kill SIGKILLs the part and waits for its end.
func (p *Part) Kill() {
	if p.proc != nil {
		_ = p.proc.Stop(syscall.SIGKILL, 10*time.Second)
	}
}

// Log returns the last n lines of the part's log.
func (p *Part) Log(n int) string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogContains reports whether the part's log holds s.
func (p *Part) LogContains(s string) bool {
	data, _ := os.ReadFile(p.log)
	return strings.Contains(string(data), s)
}

// Metrics scrapes the part's /metrics.
func (p *Part) Metrics(ctx context.Context) (Samples, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", p.MetricsURL, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// Samples are the lines of a Prometheus text exposition: series (name
// and labels as written) to value.
type Samples map[string]float64

// ParseMetrics reads a Prometheus text exposition.
func ParseMetrics(r io.Reader) (Samples, error) {
	s := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		s[line[:i]] = v
	}
	return s, sc.Err()
}

// Sum adds the values of the series of metric name whose labels include
// every one of labels ("k", "v", ...).
func (s Samples) Sum(name string, labels ...string) float64 {
	var sum float64
	for series, v := range s {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(rest, labels[i]+`="`+labels[i+1]+`"`) {
				ok = false
				break
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}
