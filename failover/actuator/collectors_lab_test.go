package actuator

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/lab/patronilab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// labRules is the rule of TestLabCollectorsSwitchover: a host that
// retransmits more than 5 TCP segments a second, judged with the
// evidence of the default TCPRetransmitRateHigh, and a failover when that
// host is the primary. Not `for`: while a host retransmits its collector
// cuts a batch every 250ms (notable_interval), and in a quarter of a
// second a lasting 9/s fault often shows 0 or 1 retransmits, below the
// threshold; each such batch restarted `for: 2s`, which then needed nine
// supporting batches in a row and once took more than a minute.
const labRules = `groups:
  - name: lab
    rules:
      - alert: LabRetransmits
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 5}
        evidence: {need: 1s, min: 750ms}
        keep_firing_for: 5s
        actions:
          - failover: {when: primary}
`

// TestLabCollectorsSwitchover runs the whole path on real parts: a Patroni
// cluster whose members each live in their own network namespace, one
// eBPF collector per member scoped to its namespace, the analyzer with a
// rule that asks for failover, and the actuator with its default vantage
// signals. Clients query the primary; then nftables in the primary's
// namespace drops 5 % of the packets to and from its PostgreSQL port. The
// primary's collector sees its own retransmits (the rule fires on it); the
// replicas' collectors see theirs towards the primary's address (the
// second vantage point): the actuator switches over, and the audit names
// the replicas as the vantage points. Nothing in the evidence is made up
// by the test.
func TestLabCollectorsSwitchover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l := startCollectorsLab(t, ctx)
	took, d := l.switchoverOnce(t, ctx)
	t.Logf("fault start → new leader %s in %s; audit: %s", d.To, took.Round(time.Millisecond), d.Reason)
	a := lastAuditOf(t, l.js, l.lab.Scope())
	if a.ID != d.ID || a.Decision != DecisionActed || !strings.Contains(a.Reason, "confirmed by") {
		t.Errorf("audit stream has %s %s %q, want %s acted", a.ID, a.Decision, a.Reason, d.ID)
	}
}

// BenchmarkCollectorsFaultToSwitchover measures, on the lab of
// TestLabCollectorsSwitchover (real collectors, analyzer and actuator),
// the time from the fault's start to Patroni reporting the chosen
// candidate as leader, detection included. Run with -benchtime=Nx.
func BenchmarkCollectorsFaultToSwitchover(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(b.N+2)*2*time.Minute)
	defer cancel()
	l := startCollectorsLab(b, ctx)
	var times []time.Duration
	for range b.N {
		if err := l.lab.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		took, _ := l.switchoverOnce(b, ctx)
		times = append(times, took)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(times[len(times)/2].Seconds(), "median_s")
	b.ReportMetric(times[len(times)-1].Seconds(), "worst_s")
	b.ReportMetric(0, "ns/op")
	b.Logf("fault→leader: %v", times)
}

// collectorsLab is a Patroni cluster in network namespaces with one eBPF
// collector per member, NATS and the analyzer running labRules.
type collectorsLab struct {
	lab    *patronilab.Cluster
	js     jetstream.JetStream
	watch  func() string // retransmits seen so far, per host and peer
	firing *firingWatch
}

// firingWatch remembers every firing alert the analyzer published.
type firingWatch struct {
	mu  sync.Mutex
	all []firing
}

// firing is a firing alert and when it arrived.
type firing struct {
	at   time.Time
	what string
}

// list is every firing alert so far, with the time it arrived.
func (f *firingWatch) list() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.all) == 0 {
		return "none"
	}
	out := make([]string, len(f.all))
	for i, a := range f.all {
		out[i] = a.at.Format("15:04:05.000") + " " + a.what
	}
	return strings.Join(out, "; ")
}

func (f *firingWatch) since(t time.Time) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.all) == 0 {
		return "", false
	}
	last := f.all[len(f.all)-1]
	return last.what, last.at.After(t)
}

func watchFiring(tb testing.TB, nc *nats.Conn, cluster string) *firingWatch {
	tb.Helper()
	f := &firingWatch{}
	sub, err := nc.Subscribe(wire.AlertSubject(cluster, "*"), func(m *nats.Msg) {
		a, err := wire.DecodeAlert(m.Data)
		if err != nil || a.State != wire.StateFiring {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.all = append(f.all, firing{at: time.Now(), what: a.Rule + " on " + a.Labels["host"]})
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	return f
}

func startCollectorsLab(tb testing.TB, ctx context.Context) *collectorsLab {
	tb.Helper()
	testenv.RequireRoot(tb)
	testenv.RequireCommand(tb, "nft", "nsenter", "pgbench")
	testenv.RequireFile(tb, "/sys/kernel/btf/vmlinux", "the kernel's BTF, for CO-RE eBPF")
	if err := collector.MountTracefs(); err != nil {
		testenv.Missing(tb, "tracefs: "+err.Error())
	}
	testenv.ExclusiveKernel(tb)
	lab := startLabWith(tb, ctx, patronilab.Options{NetNS: true})
	_, js := startNATS(tb)
	logger := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := &collectorsLab{lab: lab, js: js, watch: watchRetransmits(tb, js.Conn(), lab.Scope()), firing: watchFiring(tb, js.Conn(), lab.Scope())}

	// One collector per member, each the host of its own namespace.
	cctx, stopCollectors := context.WithCancel(ctx)
	tb.Cleanup(stopCollectors)
	for _, m := range lab.MemberNames() {
		startLabCollector(tb, cctx, js.Conn(), lab, m, logger)
	}

	// The analyzer, with the rule above.
	path := filepath.Join(tb.TempDir(), "lab.yaml")
	if err := os.WriteFile(path, []byte(labRules), 0o600); err != nil {
		tb.Fatal(err)
	}
	set, err := rules.LoadFiles(path)
	if err != nil {
		tb.Fatal(err)
	}
	an, err := analyzer.New(analyzer.Config{Rules: set, NoState: true}, js, nil, logger)
	if err != nil {
		tb.Fatal(err)
	}
	actx, stopAnalyzer := context.WithCancel(ctx)
	anDone := make(chan error, 1)
	go func() { anDone <- an.Run(actx, js.Conn()) }()
	tb.Cleanup(func() { stopAnalyzer(); <-anDone })
	return l
}

// switchoverOnce runs clients against the current primary, checks a quiet
// spell, degrades the primary's port and returns the time from the fault's
// start until Patroni reports the actuator's candidate as leader, and the
// decision. It heals the old primary before returning.
func (l *collectorsLab) switchoverOnce(tb testing.TB, ctx context.Context) (time.Duration, wire.Action) {
	tb.Helper()
	lab, js := l.lab, l.js
	old := mustLeader(tb, ctx, lab)
	r := startActuatorWith(tb, ctx, lab, js, bucket(), func(c *Config) {
		c.Rules = map[string]Policy{"LabRetransmits": {When: WhenPrimary}}
		c.Signals = nil // the defaults: retransmits, connect errors, RTT
		// The alert fires about a second into the fault; the replicas, whose
		// only traffic to the primary is replication's replies, may need
		// longer than that to show two degraded batches each. The actuator
		// acts as soon as they do: a longer wait only keeps it from
		// refusing too early (it refused 7 s in, once, with 4 s).
		c.EvidenceWait = Duration(20 * time.Second)
	})
	defer r.stop() // one actuator at a time; its cleanup waits for it

	// Clients of the primary: sixteen pgbench connections from the host that
	// read 100 kB answers and now and then write (WAL streams to the
	// replicas, whose replies are their traffic towards the primary).
	wctx, stopWorkload := context.WithCancel(ctx)
	defer stopWorkload()
	workload := startLabWorkload(tb, wctx, lab, old)

	// A quiet spell: with the workload running and nothing wrong, no
	// decision and no alert firing at all.
	quiet := time.Now()
	select {
	case d := <-r.decs:
		tb.Fatalf("decision before any fault: %s by %s: %s", d.Decision, d.Safeguard, d.Reason)
	case <-time.After(8 * time.Second):
	}
	if what, fired := l.firing.since(quiet); fired {
		tb.Fatalf("alert %s fired before any fault; retransmits seen: %s", what, l.watch())
	}

	start := time.Now()
	if err := lab.Degrade(ctx, old, 5); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = lab.Heal(context.Background(), old) }()
	defer func() {
		if tb.Failed() {
			tb.Logf("fault at %s; alerts firing: %s; retransmits seen: %s; pgbench: %s",
				start.Format("15:04:05.000"), l.firing.list(), l.watch(), workload())
		}
	}()
	// The goal is 15 s from fault to new leader; a minute is plenty.
	dctx, dcancel := context.WithTimeout(ctx, time.Minute)
	defer dcancel()
	var d wire.Action
	for {
		d = r.waitDecision(tb, dctx)
		if d.Safeguard != string(GuardPrimary) {
			break
		}
		// An alert about a replica (its own retransmits towards the
		// sick primary): rightly refused, and not the decision awaited.
		tb.Logf("refused, about a replica: %s", d.Reason)
	}
	decided := time.Since(start)
	tb.Logf("decision %s/%s after %s: %s; evidence %v", d.Decision, d.Outcome, decided.Round(time.Millisecond), d.Reason, d.Evidence)
	if d.Decision != DecisionActed || d.Outcome != string(failover.OutcomeSucceeded) {
		tb.Fatalf("decision %s/%s by %s: %s %v", d.Decision, d.Outcome, d.Safeguard, d.Reason, d.Evidence)
	}
	if d.From != old || d.To == old || d.To == "" {
		tb.Errorf("switchover from %q to %q, old primary %q", d.From, d.To, old)
	}
	replicasAgreeing := 0
	for _, m := range lab.MemberNames() {
		if v, ok := d.Evidence["vantage."+m]; ok {
			if m == old {
				tb.Errorf("the primary's own view counted as a vantage point: %s", v)
			}
			replicasAgreeing++
		}
	}
	if replicasAgreeing == 0 {
		tb.Errorf("no replica's collector in the evidence: %v", d.Evidence)
	}
	for {
		l, err := lab.Leader(ctx)
		if err == nil && l == d.To {
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("leader never became %s", d.To)
		}
		time.Sleep(50 * time.Millisecond) // polling, not an assertion
	}
	took := time.Since(start)
	tb.Logf("fault start → new leader %s in %s (decision after %s); alerts firing: %s; retransmits seen: %s",
		d.To, took.Round(time.Millisecond), decided.Round(time.Millisecond), l.firing.list(), l.watch())
	return took, d
}

// startLabCollector runs an eBPF collector for member, scoped to its
// network namespace, publishing on nc until ctx ends.
func startLabCollector(t testing.TB, ctx context.Context, nc *nats.Conn, lab *patronilab.Cluster, member string, logger *slog.Logger) {
	t.Helper()
	c, err := collector.New(collector.Config{
		Cluster: lab.Scope(), Host: member, NetNS: lab.NetNSPath(member),
		Interval: time.Second, PostgresDiscoveryInterval: time.Second,
	}, nc, nil, logger.With("host", member))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { <-done })
	select {
	case <-c.Started():
	case <-ctx.Done():
		t.Fatal("collector did not start")
	}
	for _, h := range c.Hooks() {
		if h.Name == "tcp_retransmit_skb" && h.Attached {
			return
		}
	}
	t.Fatalf("collector of %s: tcp_retransmit_skb not attached: %+v", member, c.Hooks())
}

// startLabWorkload runs pgbench against member until ctx ends; the
// returned function tells how it went (its output so far).
func startLabWorkload(t testing.TB, ctx context.Context, lab *patronilab.Cluster, member string) func() string {
	t.Helper()
	env, err := lab.ClientEnv(member)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "work.sql")
	if err := os.WriteFile(script, []byte("SELECT repeat('x', 100000);\n\\set r random(1, 10)\n\\if :r = 1\nINSERT INTO mciv_probe VALUES (1);\n\\endif\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "pgbench", "-n", "-c", "16", "-j", "2", "-R", "200", "-T", "600", "-P", "5", "-f", script)
	cmd.Env = append(os.Environ(), env...)
	out := &testenv.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("pgbench: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { <-done })
	return func() string {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return strings.Join(lines[max(0, len(lines)-40):], " | ")
	}
}

// watchRetransmits sums tcp_retransmits_total per host and peer from the
// cluster's sample batches; the returned function reports the sums.
func watchRetransmits(t testing.TB, nc *nats.Conn, cluster string) func() string {
	t.Helper()
	var mu sync.Mutex
	sums := map[string]float64{}
	perSec := map[string][]float64{} // host → retransmits in each second since start
	start := time.Now()
	sub, err := nc.Subscribe(wire.SamplesSubject(cluster, "*"), func(m *nats.Msg) {
		b, err := wire.DecodeBatch(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		sec := int(time.Since(start) / time.Second)
		for i := range b.Series {
			if s := &b.Series[i]; s.Signal == "tcp_retransmits_total" {
				sums[b.Host+"→"+s.Label("peer")] += s.Value
				ps := perSec[b.Host]
				for len(ps) <= sec {
					ps = append(ps, 0)
				}
				ps[sec] += s.Value
				perSec[b.Host] = ps
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		keys := make([]string, 0, len(sums))
		for k := range sums {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %g; ", k, sums[k])
		}
		// Each host's retransmits per second over the last 40 s, by arrival.
		now := int(time.Since(start) / time.Second)
		for _, h := range slices.Sorted(maps.Keys(perSec)) {
			fmt.Fprintf(&b, "%s per second:", h)
			for i := max(0, now-40); i <= now; i++ {
				v := 0.0
				if i < len(perSec[h]) {
					v = perSec[h][i]
				}
				fmt.Fprintf(&b, " %g", v)
			}
			b.WriteString("; ")
		}
		return b.String()
	}
}
