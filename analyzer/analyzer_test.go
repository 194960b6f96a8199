package analyzer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The default TCP rule: rate > 5/s for 3s, keep firing 5s.
const tcpRule = `groups:
  - name: network
    rules:
      - alert: TCPRetransmitRateHigh
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 5}
        for: 3s
        keep_firing_for: 5s
        labels: {severity: warning}
        annotations:
          summary: "TCP retransmits on {{ .Labels.host }} at {{ printf \"%.1f\" .Value }}/s"
`

// clock is an injected clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type testBus struct {
	srv *bus.Embedded
	nc  *nats.Conn
	js  jetstream.JetStream
}

// startBus starts an embedded nats-server with JetStream; with streams,
// the mciv streams are created.
func startBus(t testing.TB, ctx context.Context, streams bool) *testBus {
	t.Helper()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "analyzer-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	if streams {
		if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &testBus{srv: srv, nc: nc, js: js}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustRules(t testing.TB, src string) *rules.Set {
	t.Helper()
	groups, err := rules.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return &rules.Set{Groups: groups}
}

func newAnalyzer(t *testing.T, b *testBus, set *rules.Set, clk *clock) (*Analyzer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	a, err := New(Config{Rules: set, Now: clk.Now}, b.js, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, reg
}

// hostBatch is the seq'th one-second batch of a host of cluster c.
func hostBatch(host string, seq int, series ...wire.Series) *wire.Batch {
	return &wire.Batch{Cluster: "c", Host: host, Seq: uint64(seq), Start: t0.Add(time.Duration(seq) * time.Second),
		Interval: time.Second, Series: series}
}

func retrans(v float64) wire.Series {
	return wire.Series{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: v,
		Labels: []wire.Label{{Name: "local_port", Value: "5432"}}}
}

// send hands a batch to the analyzer the way Run does, with the clock just
// after the end of the batch's interval.
func send(ctx context.Context, a *Analyzer, clk *clock, b *wire.Batch) {
	clk.Set(b.Start.Add(b.Interval + 200*time.Millisecond))
	a.HandleBatch(ctx, wire.SamplesSubject(b.Cluster, b.Host), wire.EncodeBatch(b))
}

// stored returns every alert in MCIV_ALERTS with its subject.
func stored(t *testing.T, ctx context.Context, js jetstream.JetStream) (alerts []*wire.Alert, subjects []string) {
	return readStream(t, ctx, js, bus.AlertsStream, wire.DecodeAlert)
}

// readStream decodes every message of stream, in order, with its subject.
func readStream[T any](t *testing.T, ctx context.Context, js jetstream.JetStream, stream string, decode func([]byte) (T, error)) (out []T, subjects []string) {
	t.Helper()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		v, err := decode(m.Data)
		if err != nil {
			t.Fatalf("%s message %d: %v", stream, seq, err)
		}
		out = append(out, v)
		subjects = append(subjects, m.Subject)
	}
	return out, subjects
}

func TestLifecycleThroughJetStream(t *testing.T) {
	absent := math.NaN() // the collector sent no key: nothing changed
	for _, tc := range []struct {
		name   string
		values []float64 // retransmits per one-second batch
		want   []string  // "seq:state" of what lands in the stream
	}{
		{
			name:   "pending, firing, held through a dip, resolved",
			values: []float64{10, 10, 10, 10, 10, 10, 1, 8, absent, absent, absent, absent, absent, absent, absent},
			// pending from seq 0, firing after 3s at seq 3; last anomaly at seq 7,
			// quiet from seq 8, resolved 5s later at seq 13
			want: []string{"3:firing", "13:resolved"},
		},
		{
			name:   "blip shorter than for",
			values: []float64{50, 50, 50, 1, absent, absent, absent, 2, absent},
		},
		{
			name:   "missing key counts as zero and resolves",
			values: []float64{10, 10, 10, 10, 10, absent, absent, absent, absent, absent, absent, absent},
			want:   []string{"3:firing", "10:resolved"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			b := startBus(t, ctx, true)
			clk := &clock{}
			a, reg := newAnalyzer(t, b, mustRules(t, tcpRule), clk)
			var got []string
			seen := 0
			for seq, v := range tc.values {
				var series []wire.Series
				if !math.IsNaN(v) {
					series = append(series, retrans(v))
				}
				send(ctx, a, clk, hostBatch("db-1", seq, series...))
				alerts, subjects := stored(t, ctx, b.js)
				for i := seen; i < len(alerts); i++ {
					got = append(got, fmt.Sprintf("%d:%s", seq, alerts[i].State))
					if subjects[i] != "mciv.alerts.c.TCPRetransmitRateHigh" {
						t.Errorf("subject %q", subjects[i])
					}
				}
				seen = len(alerts)
				firing := testutil.ToFloat64(a.m.activeGauges[0][1])
				if wantFiring := len(got) == 1; (firing == 1) != wantFiring {
					t.Errorf("seq %d: active firing gauge %v", seq, firing)
				}
			}
			if !reflect.DeepEqual(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
				t.Fatalf("stream got %v, want %v", got, tc.want)
			}
			if n := testutil.ToFloat64(a.m.batches); n != float64(len(tc.values)) {
				t.Errorf("batches_total %v", n)
			}
			if n, err := testutil.GatherAndCount(reg, "mciv_analyzer_alerts_published_total"); err != nil || n != 2 {
				t.Errorf("published series: %d %v", n, err)
			}
			if len(tc.want) == 0 {
				return
			}
			if f := testutil.ToFloat64(a.m.published.WithLabelValues("firing")); f != 1 {
				t.Errorf("published firing %v", f)
			}
			alerts, _ := stored(t, ctx, b.js)
			fired := alerts[0]
			if fired.Labels["host"] != "db-1" || fired.Labels["severity"] != "warning" || fired.Labels["alertname"] != "TCPRetransmitRateHigh" ||
				fired.Value != 10 || fired.Threshold != 5 || fired.Annotations["summary"] != "TCP retransmits on db-1 at 10.0/s" ||
				!fired.StartsAt.Equal(t0.Add(4*time.Second)) || !fired.At.Equal(t0.Add(4200*time.Millisecond)) {
				t.Errorf("firing alert %+v", fired)
			}
			if res := alerts[1]; res.Fingerprint != fired.Fingerprint || !res.StartsAt.Equal(fired.StartsAt) || res.EndsAt.IsZero() {
				t.Errorf("resolved alert %+v", res)
			}
		})
	}
}

func TestStoredExactlyOnceWhenRepublished(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	set := mustRules(t, tcpRule)
	batches := []*wire.Batch{}
	for seq := range 6 {
		batches = append(batches, hostBatch("db-1", seq, retrans(20)))
	}

	clk := &clock{}
	a, _ := newAnalyzer(t, b, set, clk)
	for _, bt := range batches {
		send(ctx, a, clk, bt)
	}
	alerts, _ := stored(t, ctx, b.js)
	if len(alerts) != 1 || alerts[0].State != wire.StateFiring {
		t.Fatalf("stream holds %+v", alerts)
	}

	// The same change published again (a retry after a lost ack).
	a.enqueue([]*wire.Alert{alerts[0]})
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A second analyzer (a restart, or an HA twin) with another clock sees
	// the same batches and decides the same change.
	clk2 := &clock{}
	a2, _ := newAnalyzer(t, b, set, clk2)
	for _, bt := range batches {
		send(ctx, a2, clk2, bt)
		clk2.Set(clk2.Now().Add(time.Minute))
	}
	if f := testutil.ToFloat64(a2.m.published.WithLabelValues("firing")); f != 1 {
		t.Fatalf("second analyzer published %v firing changes", f)
	}
	if again, _ := stored(t, ctx, b.js); len(again) != 1 {
		t.Fatalf("stream holds %d messages after republishing, want 1", len(again))
	}
}

func TestPublishFailureIsRetried(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, false) // no MCIV_ALERTS stream yet: publications fail
	src := strings.Replace(tcpRule, "for: 3s", "for: 0s", 1)
	src = strings.Replace(src, "keep_firing_for: 5s", "keep_firing_for: 0s", 1)
	clk := &clock{}
	a, _ := newAnalyzer(t, b, mustRules(t, src), clk)

	send(ctx, a, clk, hostBatch("db-1", 0, retrans(20))) // fires
	if e := testutil.ToFloat64(a.m.publishErrors); e != 1 || a.Queued() != 1 || testutil.ToFloat64(a.m.queued) != 1 {
		t.Fatalf("after a failed publish: errors %v, queued %d", e, a.Queued())
	}
	send(ctx, a, clk, hostBatch("db-1", 1)) // resolves; retry due after 1s: fails again
	if e := testutil.ToFloat64(a.m.publishErrors); e != 2 || a.Queued() != 2 {
		t.Fatalf("second attempt: errors %v, queued %d", e, a.Queued())
	}

	if err := bus.EnsureStreams(ctx, b.js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	// The retry delay doubled to 2s: half a second later nothing is tried.
	clk.Set(clk.Now().Add(500 * time.Millisecond))
	a.tryFlush(ctx)
	if e := testutil.ToFloat64(a.m.publishErrors); e != 2 || a.Queued() != 2 {
		t.Fatalf("retried before its time: errors %v, queued %d", e, a.Queued())
	}
	if alerts, _ := stored(t, ctx, b.js); len(alerts) != 0 {
		t.Fatalf("published before the retry: %v", alerts)
	}
	send(ctx, a, clk, hostBatch("db-1", 3)) // 2s later: the queue goes out, in order
	alerts, _ := stored(t, ctx, b.js)
	if len(alerts) != 2 || alerts[0].State != wire.StateFiring || alerts[1].State != wire.StateResolved || a.Queued() != 0 {
		t.Fatalf("after the retry: %d stored, %d queued", len(alerts), a.Queued())
	}
	if f := testutil.ToFloat64(a.m.published.WithLabelValues("resolved")); f != 1 {
		t.Fatalf("published resolved %v", f)
	}
}

func TestQueueIsBounded(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, false)
	a, err := New(Config{Rules: mustRules(t, tcpRule), MaxQueued: 2, Now: (&clock{}).Now}, b.js, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		a.enqueue([]*wire.Alert{{Rule: "R", Fingerprint: fmt.Sprint(i), State: wire.StateFiring, Labels: map[string]string{"cluster": "c"}}})
	}
	if a.Queued() != 2 || testutil.ToFloat64(a.m.dropped) != 1 || a.queue[0].alert.Fingerprint != "1" {
		t.Fatalf("queued %d dropped %v", a.Queued(), testutil.ToFloat64(a.m.dropped))
	}
}

func TestBadMessagesChangeNothing(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	a, reg := newAnalyzer(t, b, mustRules(t, tcpRule), clk)
	bad := func(reason string) float64 { return testutil.ToFloat64(a.m.bad.WithLabelValues(reason)) }

	a.HandleBatch(ctx, "mciv.samples.c.db-1", []byte("garbage, not a batch"))
	if bad(BadDecode) != 1 {
		t.Fatalf("garbage: bad{decode} = %v", bad(BadDecode))
	}
	// Host db-2 (or someone holding its credentials) sends a batch in
	// db-1's name with a huge Seq and an anomaly.
	forged := hostBatch("db-1", 1000, retrans(500))
	for range 5 {
		a.HandleBatch(ctx, wire.SamplesSubject("c", "db-2"), wire.EncodeBatch(forged))
	}
	if bad(BadForged) != 5 {
		t.Fatalf("forged: bad{forged} = %v", bad(BadForged))
	}
	a.HandleBatch(ctx, "mciv.samples.c", wire.EncodeBatch(forged))
	a.HandleBatch(ctx, "mciv.events.c.db-1", wire.EncodeBatch(forged))
	if bad(BadSubject) != 2 {
		t.Fatalf("bad{subject} = %v", bad(BadSubject))
	}
	noInterval := hostBatch("db-1", 1, retrans(500))
	noInterval.Interval = 0
	a.HandleBatch(ctx, wire.SamplesSubject("c", "db-1"), wire.EncodeBatch(noInterval))
	if bad(BadInvalid) != 1 {
		t.Fatalf("bad{invalid} = %v", bad(BadInvalid))
	}
	if n := testutil.ToFloat64(a.m.batches); n != 0 {
		t.Fatalf("refused messages were evaluated: batches_total %v", n)
	}
	if alerts, _ := stored(t, ctx, b.js); len(alerts) != 0 {
		t.Fatalf("refused messages raised alerts: %+v", alerts)
	}

	// db-1's real batches, with small Seqs, still evaluate normally.
	for seq := range 4 {
		send(ctx, a, clk, hostBatch("db-1", seq, retrans(10)))
	}
	alerts, _ := stored(t, ctx, b.js)
	if len(alerts) != 1 || alerts[0].Labels["host"] != "db-1" || !alerts[0].StartsAt.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("after refused messages: %+v", alerts)
	}
	if n := testutil.ToFloat64(a.m.batches); n != 4 {
		t.Fatalf("batches_total %v", n)
	}
	// The metric is exported through the registry.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP mciv_analyzer_bad_messages_total Messages on samples subjects refused, by reason.
# TYPE mciv_analyzer_bad_messages_total counter
mciv_analyzer_bad_messages_total{reason="decode"} 1
mciv_analyzer_bad_messages_total{reason="forged"} 5
mciv_analyzer_bad_messages_total{reason="invalid"} 1
mciv_analyzer_bad_messages_total{reason="subject"} 2
`), "mciv_analyzer_bad_messages_total"); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateAndOlderBatchesAreIgnored(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	a, _ := newAnalyzer(t, b, mustRules(t, tcpRule), clk)
	send(ctx, a, clk, hostBatch("db-1", 5, retrans(1)))
	send(ctx, a, clk, hostBatch("db-1", 5, retrans(1)))
	send(ctx, a, clk, hostBatch("db-1", 4, retrans(1)))
	restarted := hostBatch("db-1", 6, retrans(1))
	restarted.Seq = 0
	send(ctx, a, clk, restarted)
	if d, o, r, n := testutil.ToFloat64(a.m.ignored.WithLabelValues("duplicate")), testutil.ToFloat64(a.m.ignored.WithLabelValues("out_of_order")),
		testutil.ToFloat64(a.m.restarts), testutil.ToFloat64(a.m.batches); d != 1 || o != 1 || r != 1 || n != 2 {
		t.Fatalf("duplicate %v out_of_order %v restarts %v evaluated %v", d, o, r, n)
	}
}

func TestEvaluationErrorsAreCounted(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	src := "groups:\n- name: g\n  rules:\n  - alert: Load\n    signal: load\n    stat: rate\n    detector: {type: threshold, op: '>', value: 1}\n"
	a, _ := newAnalyzer(t, b, mustRules(t, src), clk)
	gauge := wire.Series{Signal: "load", Kind: wire.KindGauge, Value: 3}
	send(ctx, a, clk, hostBatch("h", 1, gauge))
	send(ctx, a, clk, hostBatch("h", 2, gauge))
	if n := testutil.ToFloat64(a.m.evalErrors.WithLabelValues("Load")); n != 2 {
		t.Fatalf("evaluation errors %v", n)
	}
}

func TestRunEndToEnd(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	set, err := rules.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	a, _ := newAnalyzer(t, b, set, clk)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, b.nc) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}

	// A collector on its own connection: garbage first, then real batches.
	collector, err := bus.Connect(ctx, b.srv.URL(), bus.ConnectOptions{Name: "collector db-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer collector.Close()
	if err := collector.Publish("mciv.samples.c.db-1", []byte{0xde, 0xad}); err != nil {
		t.Fatal(err)
	}
	for seq := range 5 {
		if err := collector.Publish(wire.SamplesSubject("c", "db-1"), wire.EncodeBatch(hostBatch("db-1", seq, retrans(12)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := collector.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}

	cons, err := b.js.OrderedConsumer(ctx, bus.AlertsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
	if err != nil {
		t.Fatalf("no alert arrived: %v", err)
	}
	al, err := wire.DecodeAlert(msg.Data())
	if err != nil {
		t.Fatal(err)
	}
	if al.State != wire.StateFiring || al.Labels["host"] != "db-1" || al.Value != 12 || !strings.Contains(al.Annotations["summary"], "db-1") {
		t.Fatalf("alert %+v", al)
	}
	// The garbage came first on the same subscription, so it was counted
	// before the batches that raised the alert, and changed nothing.
	if n := testutil.ToFloat64(a.m.bad.WithLabelValues(BadDecode)); n != 1 {
		t.Fatalf("bad{decode} = %v", n)
	}
	// Every batch is evaluated; the alert may fire before the last ones
	// arrive (evidence fires after two or three), so wait for them.
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(a.m.batches) < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("batches_total = %v, want 5", testutil.ToFloat64(a.m.batches))
		}
		time.Sleep(10 * time.Millisecond)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}

func TestNew(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, false)
	set := mustRules(t, tcpRule)
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Rules: set}, b.js, reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Rules: set}, b.js, reg, nil); err == nil {
		t.Fatal("registered the same metrics twice")
	}
	if _, err := New(Config{}, b.js, nil, nil); err == nil {
		t.Fatal("no rules accepted")
	}
	if _, err := New(Config{Rules: set}, nil, nil, nil); err == nil {
		t.Fatal("no JetStream accepted")
	}
	var are prometheus.AlreadyRegisteredError
	_, err := New(Config{Rules: set}, b.js, reg, nil)
	if !errors.As(err, &are) {
		t.Fatalf("error %v does not wrap AlreadyRegisteredError", err)
	}
}
