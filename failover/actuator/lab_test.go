package actuator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/patroni"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/patronilab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// tbWriter sends log output to tb.Log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startLab(tb testing.TB, ctx context.Context) *patronilab.Cluster {
	tb.Helper()
	return startLabWith(tb, ctx, patronilab.Options{})
}

// startLabWith starts a lab with opts (its FailureLog set to tb), dumps
// its logs if the test fails, stops it at the end, and creates the probe
// table on its leader.
func startLabWith(tb testing.TB, ctx context.Context, opts patronilab.Options) *patronilab.Cluster {
	tb.Helper()
	testenv.RequireRoot(tb)
	testenv.RequireCommand(tb, "patroni", "etcd")
	testenv.RequireFile(tb, "/usr/lib/postgresql/15/bin/postgres", "PostgreSQL 15 (apt-get install postgresql-15)")
	opts.FailureLog = tbWriter{tb}
	lab, err := patronilab.Start(ctx, opts)
	if err != nil {
		tb.Fatalf("patronilab: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			lab.DumpLogs(tbWriter{tb})
		}
		if err := lab.Stop(); err != nil {
			tb.Errorf("lab stop: %v", err)
		}
	})
	if _, err := lab.ExecSQL(ctx, mustLeader(tb, ctx, lab), "CREATE TABLE IF NOT EXISTS mciv_probe(x int); INSERT INTO mciv_probe VALUES (1);"); err != nil {
		tb.Fatal(err)
	}
	return lab
}

func mustLeader(tb testing.TB, ctx context.Context, lab *patronilab.Cluster) string {
	tb.Helper()
	l, err := lab.Leader(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// labRun is one actuator watching the lab through a real Patroni driver.
type labRun struct {
	lab    *patronilab.Cluster
	js     jetstream.JetStream
	decs   chan wire.Action
	stop   context.CancelFunc
	done   chan error
	probes sync.WaitGroup
}

func startActuator(tb testing.TB, ctx context.Context, lab *patronilab.Cluster, js jetstream.JetStream, bucket string) *labRun {
	tb.Helper()
	return startActuatorWith(tb, ctx, lab, js, bucket, nil)
}

// startActuatorWith starts an actuator whose configuration edit (if not
// nil) has changed from startActuator's.
func startActuatorWith(tb testing.TB, ctx context.Context, lab *patronilab.Cluster, js jetstream.JetStream, bucket string, edit func(*Config)) *labRun {
	tb.Helper()
	user, pass := lab.APIAuth()
	drv, err := patroni.New(patroni.Config{
		Cluster: lab.Scope(), Endpoints: lab.APIURLs(), Username: user, Password: pass,
		ConfirmTimeout: 30 * time.Second, PollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	r := &labRun{lab: lab, js: js, decs: make(chan wire.Action, 16), done: make(chan error, 1)}
	cfg := Config{
		Enabled: true, Rules: map[string]Policy{"pg_latency": {When: WhenPrimary}},
		Persist: Duration(2 * time.Second), EvidenceWait: Duration(4 * time.Second), Recheck: Duration(250 * time.Millisecond), Window: Duration(10 * time.Second), SeenWindow: Duration(5 * time.Second),
		MinDegradedBatches: 2, Signals: []SignalThreshold{{Signal: "pg_query_latency_seconds", Min: 0.25}},
		Durable: "actuator-" + bucket, KVBucket: bucket, MaxLagBytes: 16 << 20,
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(Options{
		Config: cfg,
		JS:     js, Drivers: map[string]failover.Driver{lab.Scope(): drv}, Holder: "lab-" + bucket,
		Logger:     slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		OnDecision: func(a wire.Action) { r.decs <- a },
	})
	if err != nil {
		tb.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r.stop = cancel
	go func() { r.done <- a.Run(rctx) }()
	// Wait until its consumer exists: then samples and alerts reach it.
	for {
		if _, err := js.Consumer(ctx, bus.AlertsStream, "actuator-"+bucket); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			tb.Fatal("actuator did not start")
		case <-time.After(20 * time.Millisecond):
		}
	}
	tb.Cleanup(func() {
		cancel()
		<-r.done
		r.probes.Wait()
	})
	return r
}

// probe publishes, every 250 ms until ctx ends, host's view of target: the
// latency of a query on target's PostgreSQL (1 s when it times out), as a
// sample batch on host's subject with peer = target's address.
func (r *labRun) probe(ctx context.Context, host, target string) {
	addr := "127.0.0.1:" + strconv.Itoa(r.lab.PGPort(target))
	r.probes.Add(1)
	go func() {
		defer r.probes.Done()
		var seq uint64
		for ctx.Err() == nil {
			start := time.Now()
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := r.lab.ExecSQL(qctx, target, "SELECT count(*) FROM mciv_probe")
			cancel()
			lat := time.Since(start).Seconds()
			if err != nil {
				lat = max(lat, 0.5)
			}
			seq++
			b := &wire.Batch{Cluster: r.lab.Scope(), Host: host, Seq: seq, Start: start, Interval: 250 * time.Millisecond,
				Series: []wire.Series{
					{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1},
					{Signal: "pg_query_latency_seconds", Kind: wire.KindGauge, Value: lat,
						Labels: []wire.Label{{Name: "peer", Value: addr}}},
				}}
			_ = r.js.Conn().Publish(wire.SamplesSubject(r.lab.Scope(), host), wire.EncodeBatch(b))
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
}

// fault holds an ACCESS EXCLUSIVE lock on the probe table on member until
// ctx ends (the backend notices the client is gone) or PostgreSQL is shut down: every query touching it stalls.
func fault(ctx context.Context, lab *patronilab.Cluster, member string) {
	go func() {
		_, _ = lab.ExecSQL(ctx, member, "SET client_connection_check_interval = '100ms'; BEGIN; LOCK TABLE mciv_probe IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;")
	}()
}

func publishAlert(tb testing.TB, ctx context.Context, js jetstream.JetStream, cluster, host string, startsAt time.Time) *wire.Alert {
	tb.Helper()
	al := &wire.Alert{
		Fingerprint: "lab-" + host + "-" + strconv.FormatInt(startsAt.UnixNano(), 36), Rule: "pg_latency", State: wire.StateFiring,
		Labels: map[string]string{"cluster": cluster, "host": host},
		Signal: "query latency", Stat: "p99", Value: 1, Baseline: 0.002, Threshold: 0.25,
		StartsAt: startsAt, At: time.Now(),
	}
	data, err := wire.EncodeAlert(al)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := js.Publish(ctx, wire.AlertSubject(cluster, al.Rule), data, jetstream.WithMsgID(al.MsgID())); err != nil {
		tb.Fatal(err)
	}
	return al
}

// waitDecision returns the next decision that is not pending_approval.
func (r *labRun) waitDecision(tb testing.TB, ctx context.Context) wire.Action {
	tb.Helper()
	for {
		select {
		case <-ctx.Done():
			tb.Fatal("no decision before the deadline")
		case d := <-r.decs:
			if d.Decision != DecisionPendingApproval {
				return d
			}
		}
	}
}

// switchoverOnce degrades the leader, supplies the replicas' view and the
// alert, and returns the time from the fault's start until Patroni
// reports the chosen candidate as the running leader.
func switchoverOnce(tb testing.TB, ctx context.Context, lab *patronilab.Cluster, js jetstream.JetStream, bucket string) (time.Duration, wire.Action) {
	tb.Helper()
	r := startActuator(tb, ctx, lab, js, bucket)
	old := mustLeader(tb, ctx, lab)
	pctx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	for _, m := range lab.MemberNames() {
		r.probe(pctx, m, old) // the primary's own view, and each replica's
	}
	fctx, endFault := context.WithCancel(ctx)
	defer endFault()
	start := time.Now()
	fault(fctx, lab, old)
	publishAlert(tb, ctx, js, lab.Scope(), old, start)

	d := r.waitDecision(tb, ctx)
	if d.Decision != DecisionActed || d.Outcome != string(failover.OutcomeSucceeded) {
		tb.Fatalf("decision %s/%s by %s: %s %v", d.Decision, d.Outcome, d.Safeguard, d.Reason, d.Evidence)
	}
	var took time.Duration
	for {
		l, err := lab.Leader(ctx)
		if err == nil && l == d.To {
			took = time.Since(start)
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("leader never became %s", d.To)
		}
		time.Sleep(50 * time.Millisecond) // polling, not an assertion
	}
	stopProbes()
	endFault()
	return took, d
}

func TestLabSwitchoverAndRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	lab := startLab(t, ctx)
	_, js := startNATS(t)

	t.Run("one vantage point only", func(t *testing.T) {
		r := startActuator(t, ctx, lab, js, bucket())
		old := mustLeader(t, ctx, lab)
		var replicas []string
		for _, m := range lab.MemberNames() {
			if m != old {
				replicas = append(replicas, m)
			}
		}
		pctx, stopProbes := context.WithCancel(ctx)
		defer stopProbes()
		r.probe(pctx, old, old)
		r.probe(pctx, replicas[0], old) // the analyzer is cut off from replicas[1]
		fctx, endFault := context.WithCancel(ctx)
		defer endFault()
		start := time.Now()
		fault(fctx, lab, old)
		publishAlert(t, ctx, js, lab.Scope(), old, start)
		d := r.waitDecision(t, ctx)
		if d.Decision != DecisionRefused || (d.Safeguard != string(GuardVantage) && d.Safeguard != string(GuardCandidate)) {
			t.Fatalf("decision %s by %s: %s", d.Decision, d.Safeguard, d.Reason)
		}
		t.Logf("refused: %s", d.Reason)
		if l := mustLeader(t, ctx, lab); l != old {
			t.Fatalf("leader moved to %s", l)
		}
	})

	t.Run("load spike on every node", func(t *testing.T) {
		r := startActuator(t, ctx, lab, js, bucket())
		old := mustLeader(t, ctx, lab)
		pctx, stopProbes := context.WithCancel(ctx)
		defer stopProbes()
		for _, m := range lab.MemberNames() {
			r.probe(pctx, m, old)
		}
		fctx, endFault := context.WithCancel(ctx)
		defer endFault()
		start := time.Now()
		fault(fctx, lab, old)
		// The analyzer fires on every host at once: the replicas first.
		for _, m := range lab.MemberNames() {
			if m != old {
				publishAlert(t, ctx, js, lab.Scope(), m, start)
			}
		}
		primary := publishAlert(t, ctx, js, lab.Scope(), old, start)
		var d wire.Action
		for d.Fingerprint != primary.Fingerprint {
			d = r.waitDecision(t, ctx)
		}
		if d.Decision != DecisionRefused || d.Safeguard != string(GuardNotSpecific) {
			t.Fatalf("decision %s by %s: %s", d.Decision, d.Safeguard, d.Reason)
		}
		t.Logf("refused: %s", d.Reason)
		if l := mustLeader(t, ctx, lab); l != old {
			t.Fatalf("leader moved to %s", l)
		}
	})

	t.Run("sick primary is switched over", func(t *testing.T) {
		if err := lab.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		took, d := switchoverOnce(t, ctx, lab, js, bucket())
		t.Logf("fault start → new leader %s in %s; audit: %s (token %d)", d.To, took.Round(time.Millisecond), d.Reason, d.FencingToken)
		if !strings.Contains(d.Reason, "switching over "+lab.Scope()+" from ") || !strings.Contains(d.Reason, "confirmed by") || d.FencingToken == 0 {
			t.Errorf("audit reason %q token %d", d.Reason, d.FencingToken)
		}
		a := lastAuditOf(t, js, lab.Scope())
		if a.ID != d.ID || a.Decision != DecisionActed {
			t.Errorf("audit stream has %s %s, want %s", a.ID, a.Decision, d.ID)
		}
	})
}

func lastAuditOf(t testing.TB, js jetstream.JetStream, cluster string) wire.Action {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, wire.ActionSubject(cluster))
	if err != nil {
		t.Fatal(err)
	}
	a, err := wire.DecodeAction(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return *a
}

// BenchmarkFaultToSwitchover measures, on a real Patroni cluster, the time
// from the start of a fault on the primary to Patroni reporting the chosen
// candidate as leader (persist window 2 s included; the analyzer's own
// detection delay is not). Run with -benchtime=Nx.
func BenchmarkFaultToSwitchover(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	lab := startLab(b, ctx)
	_, js := startNATS(b)
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := lab.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		took, _ := switchoverOnce(b, ctx, lab, js, bucket())
		times = append(times, took)
	}
	b.StopTimer()
	if len(times) == 0 {
		b.Fatal(errors.New("no run"))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(times[len(times)/2].Seconds(), "median_s")
	b.ReportMetric(times[len(times)-1].Seconds(), "worst_s")
	b.ReportMetric(0, "ns/op")
	b.Log(fmt.Sprintf("fault→leader: %v", times))
}
