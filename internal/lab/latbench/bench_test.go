package latbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/nats-io/nats.go"
)

// slackFeed turns the fake Slack's messages into notes: a top-level
// message that turns FIRING (posted, or updated from RESOLVED) is a firing
// note, one that turns RESOLVED a resolved note. Updates that keep the
// state (a new value, an acknowledgement) and thread replies are not new
// notifications.
func slackFeed(ctx context.Context, srv *slacktest.Server) *Feed {
	feed := NewFeed()
	go func() {
		state := map[string]bool{} // channel/ts -> firing
		seen := 0
		for {
			msgs, err := srv.WaitMessages(ctx, seen+1)
			now := time.Now()
			if err != nil {
				return
			}
			for _, m := range msgs[seen:] {
				if n, ok := slackNote(state, m); ok {
					n.At = now
					feed.Add(n)
				}
			}
			seen = len(msgs)
		}
	}()
	return feed
}

// busFeeds follows mciv's NATS server: the alerts it publishes (onBus,
// each note naming the rule, its labels and value), and the kernel time
// of each retransmit in its tcp_retransmit events (kernel). They split
// mciv's latency into TCP's own (the first retransmit), the collector and
// analyzer (until the alert), and the notifier and Slack (until the
// message). If batches is not nil, every sample batch is written to it
// as one line (see batchLine), to replay what the rules saw.
func busFeeds(ctx context.Context, url string, batches io.Writer) (onBus, kernel *Feed, err error) {
	nc, err := nats.Connect(url, nats.Name("mciv-latbench"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to mciv's NATS: %w", err)
	}
	context.AfterFunc(ctx, nc.Close)
	onBus, kernel = NewFeed(), NewFeed()
	_, err = nc.Subscribe(wire.AlertsWildcard, func(m *nats.Msg) {
		now := time.Now()
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) != nil {
			return
		}
		switch a.State {
		case wire.StateFiring, wire.StateResolved:
			onBus.Add(Note{At: now, Firing: a.State == wire.StateFiring, What: alertWhat(&a)})
		}
	})
	if err == nil && batches != nil {
		_, err = nc.Subscribe(wire.SamplesWildcard, func(m *nats.Msg) {
			now := time.Now()
			if b, err := wire.DecodeBatch(m.Data); err == nil {
				_, _ = io.WriteString(batches, batchLine(now, b))
			}
		})
	}
	if err == nil {
		_, err = nc.Subscribe(wire.EventsWildcard, func(m *nats.Msg) {
			e, err := wire.DecodeEvent(m.Data)
			if err != nil || e.Kind != "tcp_retransmit" {
				return
			}
			kernel.Add(Note{At: e.Time, Firing: true, What: "tcp_retransmit event"})
		})
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("subscribe to mciv's alerts and events: %w", err)
	}
	return onBus, kernel, nc.Flush()
}

// lockedWriter serialises writes to w (the batches file: NATS callbacks
// and the runner write to it).
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// alertWhat describes an alert of the bus for the log: rule, state,
// labels, value against threshold (and baseline), start.
func alertWhat(a *wire.Alert) string {
	keys := slices.Sorted(maps.Keys(a.Labels))
	var ls []string
	for _, k := range keys {
		ls = append(ls, k+"="+a.Labels[k])
	}
	w := fmt.Sprintf("alert %s %s {%s} %s %s=%.4g threshold %.4g", a.Rule, a.State, strings.Join(ls, ", "), a.Signal, a.Stat, a.Value, a.Threshold)
	if a.Baseline != 0 {
		w += fmt.Sprintf(" baseline %.4g", a.Baseline)
	}
	return w + " starts_at " + a.StartsAt.UTC().Format("15:04:05.000")
}

// batchLine is one sample batch as the benchmark records it: when it
// arrived, its start and covered time, and the sum of its TCP retransmit
// and reset counters (the collector's deltas), tab-separated.
func batchLine(at time.Time, b *wire.Batch) string {
	var retrans, resets float64
	for _, s := range b.Series {
		switch s.Signal {
		case "tcp_retransmits_total":
			retrans += s.Value
		case "tcp_resets_total":
			resets += s.Value
		}
	}
	return fmt.Sprintf("%s\t%s\t%d\t%d\t%g\t%g\n", at.UTC().Format("15:04:05.000"), b.Start.UTC().Format("15:04:05.000"),
		b.Interval.Milliseconds(), b.Seq, retrans, resets)
}

// slackNote says whether m changes its message's state, and to what.
func slackNote(state map[string]bool, m slacktest.Message) (Note, bool) {
	if m.ThreadTS != "" {
		return Note{}, false
	}
	var firing bool
	switch {
	case strings.HasPrefix(m.Text, "[FIRING]"):
		firing = true
	case strings.HasPrefix(m.Text, "[RESOLVED]"):
	default:
		return Note{}, false
	}
	key := m.ChannelID + "/" + m.TS
	was, known := state[key]
	state[key] = firing
	if known && was == firing {
		return Note{}, false
	}
	if !known && !firing {
		return Note{}, false // a resolve of a message never seen firing
	}
	return Note{Firing: firing, What: m.Method + ": " + m.Text}, true
}

func TestSlackNote(t *testing.T) {
	state := map[string]bool{}
	msg := func(method, ts, thread, text string) slacktest.Message {
		return slacktest.Message{Method: method, ChannelID: "C1", TS: ts, ThreadTS: thread, Text: text}
	}
	for i, tc := range []struct {
		m          slacktest.Message
		note, fire bool
	}{
		{msg("chat.postMessage", "1", "", "[FIRING] TCPRetransmitRateHigh on db"), true, true},
		{msg("chat.update", "1", "", "[FIRING] TCPRetransmitRateHigh on db: value 40"), false, false},
		{msg("chat.postMessage", "2", "1", "[FIRING] a thread reply"), false, false},
		{msg("chat.update", "1", "", "[RESOLVED] TCPRetransmitRateHigh on db"), true, false},
		{msg("chat.update", "1", "", "[RESOLVED] TCPRetransmitRateHigh on db (acked)"), false, false},
		{msg("chat.update", "1", "", "[FIRING] TCPRetransmitRateHigh on db"), true, true},
		{msg("chat.update", "9", "", "[RESOLVED] never seen"), false, false},
		{msg("chat.postMessage", "3", "", "something else"), false, false},
	} {
		n, ok := slackNote(state, tc.m)
		if ok != tc.note || (ok && n.Firing != tc.fire) {
			t.Errorf("%d: %s %q: note=%v firing=%v, want note=%v firing=%v", i, tc.m.Method, tc.m.Text, ok, n.Firing, tc.note, tc.fire)
		}
	}
}

// loadavg returns the machine's load averages, to say how busy it was.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// envInt reads a setting of the benchmark from the environment.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number >= 0", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("%s=%q: want a duration such as 10m or 90s", name, v)
	}
	return d
}

// TestBenchLatency is `make bench-latency`: the same real faults against
// mciv and Prometheus (fastest and typical), side by side. It is opt-in
// (MCIV_BENCH_LATENCY=1) and takes about 35 minutes with the defaults:
//
//	MCIV_BENCH_MCIV            the mciv binary (default: built here)
//	MCIV_BENCH_FAULTS          faults for mciv and Prometheus fastest (5)
//	MCIV_BENCH_TYPICAL_FAULTS  faults for Prometheus typical (as many; 0 leaves it out)
//	MCIV_BENCH_QUIET           the quiet period with noise (10m; 0 skips it)
//	MCIV_BENCH_GAP             quiet time between faults once all resolved (10s)
//	MCIV_BENCH_OUT             also write the table to this file
//	MCIV_BENCH_PROMETHEUS      0 leaves Prometheus out (mciv only; 1)
//	MCIV_BENCH_BATCHES         write mciv's sample batches to this file (see batchLine),
//	                           with a "# fault N" or "# blip N" line (on, off) after each loss
func TestBenchLatency(t *testing.T) {
	if os.Getenv("MCIV_BENCH_LATENCY") != "1" {
		t.Skip("set MCIV_BENCH_LATENCY=1 (or run make bench-latency) for the side-by-side latency benchmark (about 35 min)")
	}
	testenv.RequireRoot(t)
	withProm := envInt(t, "MCIV_BENCH_PROMETHEUS", 1) != 0
	if withProm {
		testenv.RequireCommand(t, "ip", "nft", "prometheus", "prometheus-alertmanager", "prometheus-node-exporter")
	} else {
		testenv.RequireCommand(t, "ip", "nft")
	}
	testenv.RequireFile(t, "/sys/kernel/btf/vmlinux", "the collector's CO-RE probes need BTF")
	faults := envInt(t, "MCIV_BENCH_FAULTS", 5)
	typicalFaults := envInt(t, "MCIV_BENCH_TYPICAL_FAULTS", faults)
	if !withProm {
		typicalFaults = 0
	}
	quietFor := envDuration(t, "MCIV_BENCH_QUIET", 10*time.Minute)
	gap := envDuration(t, "MCIV_BENCH_GAP", 10*time.Second)
	if faults == 0 {
		t.Fatal("MCIV_BENCH_FAULTS=0: nothing to measure")
	}

	// Ctrl-C or a kill ends the run with its cleanups (the processes it
	// started, the namespace), not without them.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(sigCtx, 3*time.Hour)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := t.TempDir()
	bin := os.Getenv("MCIV_BENCH_MCIV")
	if bin == "" {
		bin = filepath.Join(dir, "mciv")
		out, err := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/mciv/mciv/cmd/mciv").CombinedOutput()
		if err != nil {
			t.Fatalf("build mciv: %v\n%s", err, out)
		}
	}

	lab, err := NewNetLab(ctx, "mciv-latbench")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("network lab: %v", err)
		}
	})
	hook, err := StartWebhook(logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hook.Close() })
	const token = "xoxb-latency-bench"
	slack := slacktest.NewServer(token)
	t.Cleanup(slack.Close)

	var systems []*System
	var settings []PromSetting
	target := "(none: Prometheus left out)"
	if withProm {
		var ne *Proc
		ne, target, err = StartNodeExporter(ctx, dir, lab)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ne.Stop)
		settings = append(settings, Fastest())
		if typicalFaults > 0 {
			settings = append(settings, Typical())
		}
	}
	for _, s := range settings {
		st, err := StartPromStack(ctx, dir, s, target, hook.URL(s.Name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Stop)
		sys := &System{Name: "Prometheus " + s.Name, Setting: s.String(), Feed: hook.Feed(s.Name),
			FireTimeout: time.Minute, ResolveTimeout: 2 * time.Minute, Faults: faults}
		if s.Name == "typical" {
			sys.FireTimeout, sys.ResolveTimeout, sys.Faults = 5*time.Minute, 6*time.Minute, typicalFaults
		}
		systems = append(systems, sys)
	}
	m, err := StartMCIV(ctx, bin, dir, lab, MCIVSlack{URL: slack.URL(), Token: token, Channel: "#oncall"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	var (
		batches   io.Writer
		batchesMu sync.Mutex
		onLoss    func(what string, on, off time.Time)
	)
	if path := os.Getenv("MCIV_BENCH_BATCHES"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		_, _ = io.WriteString(f, "# arrived\tstart\tinterval_ms\tseq\ttcp_retransmits\ttcp_resets\n")
		batches = lockedWriter{&batchesMu, f}
		onLoss = func(what string, on, off time.Time) {
			_, _ = fmt.Fprintf(batches, "# %s\t%s\t%s\n", what, on.UTC().Format("15:04:05.000"), off.UTC().Format("15:04:05.000"))
		}
	}
	onBus, kernel, err := busFeeds(ctx, m.NATSURL, batches)
	if err != nil {
		t.Fatal(err)
	}
	systems = append([]*System{
		{Name: "mciv", Setting: "`mciv up`, default rules and timings; Slack message (fake Slack)",
			Feed: slackFeed(ctx, slack), FireTimeout: time.Minute, ResolveTimeout: 2 * time.Minute, Faults: faults,
			Explain: onBus},
		{Name: "mciv (stage 1)", Setting: "the first retransmit, by the kernel's clock (from the collector's tcp_retransmit event)",
			Feed: kernel, FireTimeout: time.Minute, Faults: faults, Stage: true},
		{Name: "mciv (stage 2)", Setting: "mciv's alert published on the bus (collector + analyzer, before the notifier)",
			Feed: onBus, FireTimeout: time.Minute, Faults: faults, Stage: true},
	}, systems...)

	// A short settling time: nothing should page before the first fault.
	warm := time.Now()
	if err := sleep(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, s := range systems {
		if n := s.Feed.Count(true, warm, time.Now()); n > 0 {
			t.Logf("warning: %s paged %d times before the first fault", s.Name, n)
		}
	}
	t.Logf("workload on 127.0.0.1:%d in namespace %s; node_exporter (inside it) at %s; mciv watches %s", lab.Port(), lab.Name(), target, lab.Path())

	// Faults start at a random phase of every system's polling cycle
	// (mciv's collector batches every second).
	jitter := time.Second
	for _, s := range settings {
		jitter = max(jitter, s.Cycle())
	}
	loadBefore := loadavg()
	res, err := Run(ctx, Options{
		Lab: lab, Systems: systems, LossPercent: 20, Gap: gap, GapJitter: jitter,
		Quiet: quietFor, BlipMin: 20 * time.Second, BlipMax: 40 * time.Second, BlipLength: 300 * time.Millisecond,
		QuietTail: 10 * time.Second, Seed: uint64(time.Now().UnixNano()),
		Lock: KernelLock, Retransmits: lab.Retransmits, Logf: t.Logf, OnLoss: onLoss,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sent, echoed := lab.Traffic(); sent == 0 || echoed == 0 {
		t.Errorf("the workload did not flow: sent %d, echoed %d", sent, echoed)
	}
	table := Table(res)
	header := fmt.Sprintf("Fault: %d%% packet loss (nftables, input hook) on a 100 KiB/s TCP echo stream in network namespace %s; "+
		"fault start (nft run) to first notification. Quiet period: %s with a 300 ms blip of the same loss every 20–40 s (no slow query: left out). "+
		"Load average (1, 5, 15 min) before: %s, after: %s.\n\n",
		20, lab.Name(), quietFor, loadBefore, loadavg())
	if q := QuietReport(res); q != "" {
		table += "\nQuiet-period alerts (time, seconds into the quiet period, message; indented: mciv's alert on the bus):\n\n" + q
	}
	fmt.Println("\n" + header + table)
	if out := os.Getenv("MCIV_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(header+table), 0o644); err != nil {
			t.Errorf("write %s: %v", out, err)
		}
	}
	for _, r := range res {
		if len(r.Latencies) == 0 {
			t.Errorf("%s %s noticed none of the faults: see the logs above", r.System, r.Setting)
		}
	}
}
