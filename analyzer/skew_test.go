package analyzer

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/wire"
)

// Hosts whose clocks disagree by an hour each get their alerts on their
// own time; the skew is counted, not acted on.
func TestClockSkewBetweenHosts(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	a, _ := newAnalyzer(t, b, mustRules(t, tcpRule), clk)
	ahead := time.Hour
	for seq := range 5 {
		now := t0.Add(time.Duration(seq)*time.Second + 1200*time.Millisecond)
		clk.Set(now)
		good := hostBatch("db-1", seq, retrans(10))
		fast := hostBatch("db-2", seq, retrans(10))
		fast.Start = fast.Start.Add(ahead)
		// db-2's batches arrive interleaved with db-1's, in a different order each time
		for _, bb := range [][]*wire.Batch{{good, fast}, {fast, good}}[seq%2] {
			a.HandleBatch(ctx, wire.SamplesSubject(bb.Cluster, bb.Host), wire.EncodeBatch(bb))
		}
	}
	alerts, _ := stored(t, ctx, b.js)
	if len(alerts) != 2 {
		t.Fatalf("alerts %+v", alerts)
	}
	starts := map[string]time.Time{}
	for _, al := range alerts {
		starts[al.Labels["host"]] = al.StartsAt
	}
	if !starts["db-1"].Equal(t0.Add(4*time.Second)) || !starts["db-2"].Equal(t0.Add(ahead+4*time.Second)) {
		t.Fatalf("starts %v", starts)
	}
	if n := testutil.ToFloat64(a.m.skewed.WithLabelValues(SkewAhead)); n != 5 {
		t.Fatalf("ahead %v", n)
	}
	if n := testutil.ToFloat64(a.m.skewed.WithLabelValues(SkewBehind)); n != 0 {
		t.Fatalf("behind %v", n)
	}
	// A batch that arrives 10 minutes late is still evaluated, and counted.
	late := hostBatch("db-1", 5, retrans(10))
	clk.Set(late.Start.Add(10 * time.Minute))
	a.HandleBatch(ctx, wire.SamplesSubject("c", "db-1"), wire.EncodeBatch(late))
	if n := testutil.ToFloat64(a.m.skewed.WithLabelValues(SkewBehind)); n != 1 {
		t.Fatalf("behind %v", n)
	}
	if n := testutil.ToFloat64(a.m.batches); n != 11 {
		t.Fatalf("batches %v", n)
	}
}

func TestBadSeriesAreCounted(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	a, _ := newAnalyzer(t, b, mustRules(t, tcpRule), clk)
	send(ctx, a, clk, hostBatch("db-1", 1, retrans(math.NaN()), retrans(math.Inf(1)), retrans(-3), retrans(1)))
	for reason, want := range map[string]float64{"nan": 1, "inf": 1, "negative_counter": 1, "no_histogram": 0} {
		if n := testutil.ToFloat64(a.m.seriesDropped.WithLabelValues(reason)); n != want {
			t.Errorf("%s: %v, want %v", reason, n, want)
		}
	}
	if n := testutil.ToFloat64(a.m.evalErrors.WithLabelValues("TCPRetransmitRateHigh")); n != 0 {
		t.Errorf("evaluation errors %v", n)
	}
}

func TestSilentHostFiresAbsence(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	a, _ := newAnalyzer(t, b, mustRules(t, `groups:
  - name: hosts
    rules:
      - alert: HostSilent
        signal: mciv_collector_up
        stat: max
        detector: {type: absence, for: 10s}
`), clk)
	up := wire.Series{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}
	for seq := range 3 {
		send(ctx, a, clk, hostBatch("db-1", seq, up))
	}
	last := clk.Now()
	clk.Set(last.Add(5 * time.Second))
	a.Tick(ctx)
	clk.Set(last.Add(10 * time.Second))
	a.Tick(ctx)
	alerts, _ := stored(t, ctx, b.js)
	if len(alerts) != 1 || alerts[0].Rule != "HostSilent" || alerts[0].State != wire.StateFiring || alerts[0].Labels["host"] != "db-1" {
		t.Fatalf("alerts %+v", alerts)
	}
}
