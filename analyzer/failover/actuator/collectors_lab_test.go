package actuator

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/analyzer/failover"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/patronilab"
	"github.com/mciv/mciv/internal/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// labRules is the rule of TestLabCollectorsSwitchover: a host that
// retransmits more than 5 TCP segments a second for 2 s, and a failover
// when that host is the primary.
const labRules = `groups:
  - name: lab
    rules:
      - alert: LabRetransmits
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 5}
        for: 2s
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
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "patroni", "etcd", "nft", "nsenter", "pgbench")
	testenv.RequireFile(t, "/usr/lib/postgresql/15/bin/postgres", "PostgreSQL 15 (apt-get install postgresql-15)")
	testenv.RequireFile(t, "/sys/kernel/btf/vmlinux", "the kernel's BTF, for CO-RE eBPF")
	if err := collector.MountTracefs(); err != nil {
		testenv.Missing(t, "tracefs: "+err.Error())
	}
	testenv.ExclusiveKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	lab, err := patronilab.Start(ctx, patronilab.Options{NetNS: true, FailureLog: tbWriter{t}})
	if err != nil {
		t.Fatalf("patronilab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			lab.DumpLogs(tbWriter{t})
		}
		if err := lab.Stop(); err != nil {
			t.Errorf("lab stop: %v", err)
		}
	})
	old := mustLeader(t, ctx, lab)
	if _, err := lab.ExecSQL(ctx, old, "CREATE TABLE IF NOT EXISTS mciv_probe(x int); INSERT INTO mciv_probe VALUES (1);"); err != nil {
		t.Fatal(err)
	}
	_, js := startNATS(t)
	logger := slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// What the collectors report, for the log: retransmits per host and
	// peer, per second of fault.
	watch := watchRetransmits(t, js.Conn(), lab.Scope())

	// One collector per member, each the host of its own namespace.
	cctx, stopCollectors := context.WithCancel(ctx)
	defer stopCollectors()
	for _, m := range lab.MemberNames() {
		startLabCollector(t, cctx, js.Conn(), lab, m, logger)
	}

	// The analyzer, with the rule above.
	path := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(path, []byte(labRules), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := rules.LoadFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	an, err := analyzer.New(analyzer.Config{Rules: set, NoState: true}, js, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAnalyzer := context.WithCancel(ctx)
	anDone := make(chan error, 1)
	go func() { anDone <- an.Run(actx, js.Conn()) }()
	t.Cleanup(func() { stopAnalyzer(); <-anDone })

	r := startActuatorWith(t, ctx, lab, js, bucket(), func(c *Config) {
		c.Rules = map[string]Policy{"LabRetransmits": {When: WhenPrimary}}
		c.Signals = nil // the defaults: retransmits, connect errors, RTT
	})

	// Clients of the primary: sixteen pgbench connections from the host that
	// read 100 kB answers and now and then write (WAL streams to the
	// replicas, whose replies are their traffic towards the primary).
	wctx, stopWorkload := context.WithCancel(ctx)
	defer stopWorkload()
	workload := startLabWorkload(t, wctx, lab, old)

	// A quiet spell: with the workload running and nothing wrong, no
	// decision at all.
	select {
	case d := <-r.decs:
		t.Fatalf("decision before any fault: %s by %s: %s", d.Decision, d.Safeguard, d.Reason)
	case <-time.After(8 * time.Second):
	}
	if st, err := js.Stream(ctx, bus.AlertsStream); err != nil {
		t.Fatal(err)
	} else if info, err := st.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Fatalf("alerts before any fault (%v): %d; retransmits seen: %s", err, info.State.Msgs, watch())
	}

	start := time.Now()
	if err := lab.Degrade(ctx, old, 5); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lab.Heal(context.Background(), old) }()
	var d wire.Action
	defer func() {
		if t.Failed() {
			t.Logf("retransmits seen: %s; pgbench: %s", watch(), workload())
		}
	}()
	// The goal is 15 s from fault to new leader; a minute is plenty.
	dctx, dcancel := context.WithTimeout(ctx, time.Minute)
	defer dcancel()
	for {
		d = r.waitDecision(t, dctx)
		if d.Safeguard != string(GuardPrimary) {
			break
		}
		// An alert about a replica (its own retransmits towards the
		// sick primary): rightly refused, and not the decision awaited.
		t.Logf("refused, about a replica: %s", d.Reason)
	}
	decided := time.Since(start)
	t.Logf("decision %s/%s after %s: %s; evidence %v", d.Decision, d.Outcome, decided.Round(time.Millisecond), d.Reason, d.Evidence)
	if d.Decision != DecisionActed || d.Outcome != string(failover.OutcomeSucceeded) {
		t.Fatalf("decision %s/%s by %s: %s %v", d.Decision, d.Outcome, d.Safeguard, d.Reason, d.Evidence)
	}
	if d.From != old || d.To == old || d.To == "" {
		t.Errorf("switchover from %q to %q, old primary %q", d.From, d.To, old)
	}
	replicasAgreeing := 0
	for _, m := range lab.MemberNames() {
		if v, ok := d.Evidence["vantage."+m]; ok {
			if m == old {
				t.Errorf("the primary's own view counted as a vantage point: %s", v)
			}
			replicasAgreeing++
		}
	}
	if replicasAgreeing == 0 {
		t.Errorf("no replica's collector in the evidence: %v", d.Evidence)
	}
	for {
		l, err := lab.Leader(ctx)
		if err == nil && l == d.To {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("leader never became %s", d.To)
		}
		time.Sleep(50 * time.Millisecond) // polling, not an assertion
	}
	t.Logf("fault start → new leader %s in %s (decision after %s); retransmits seen: %s; pgbench: %s",
		d.To, time.Since(start).Round(time.Millisecond), decided.Round(time.Millisecond), watch(), workload())
	a := lastAuditOf(t, js, lab.Scope())
	if a.ID != d.ID || a.Decision != DecisionActed || !strings.Contains(a.Reason, "confirmed by") {
		t.Errorf("audit stream has %s %s %q, want %s acted", a.ID, a.Decision, a.Reason, d.ID)
	}
}

// startLabCollector runs an eBPF collector for member, scoped to its
// network namespace, publishing on nc until ctx ends.
func startLabCollector(t *testing.T, ctx context.Context, nc *nats.Conn, lab *patronilab.Cluster, member string, logger *slog.Logger) {
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
func startLabWorkload(t *testing.T, ctx context.Context, lab *patronilab.Cluster, member string) func() string {
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
	out := &lockedBuffer{}
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

// lockedBuffer is a strings.Builder safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// watchRetransmits sums tcp_retransmits_total per host and peer from the
// cluster's sample batches; the returned function reports the sums.
func watchRetransmits(t *testing.T, nc *nats.Conn, cluster string) func() string {
	t.Helper()
	var mu sync.Mutex
	sums := map[string]float64{}
	sub, err := nc.Subscribe(wire.SamplesSubject(cluster, "*"), func(m *nats.Msg) {
		b, err := wire.DecodeBatch(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for i := range b.Series {
			if s := &b.Series[i]; s.Signal == "tcp_retransmits_total" {
				sums[b.Host+"→"+s.Label("peer")] += s.Value
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
		return b.String()
	}
}
