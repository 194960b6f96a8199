package analyzer

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// queryBatch is the seq'th batch of host, with a retransmit series (rate
// v) first, then one db_query_seconds histogram per instance name.
func queryBatch(host string, seq int, v float64, instances []string) *wire.Batch {
	b := hostBatch(host, seq, retrans(v))
	var rec histo.Recorder
	rec.Observe(0.002)
	h := rec.Snapshot()
	for _, in := range instances {
		b.Series = append(b.Series, wire.Series{Signal: "db_query_seconds", Kind: wire.KindHistogram,
			Labels: []wire.Label{{Name: "instance", Value: in}}, Hist: h})
	}
	return b
}

func floodInstances(batch, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("flood-%d-%d", batch, i)
	}
	return out
}

// The attack of issue 14: one host sends 10 batches of 15,000 distinct
// instance values. With the per-host caps the analyzer holds at most
// MaxSeriesPerHost series of it; the heap it keeps grows by no more than
// what the same analyzer keeps for a host with exactly MaxSeriesPerHost
// series (measured in this run), with a margin; the flood is counted by
// host and reason; the flooding host's known series and another host's
// alerts go on firing.
func TestCardinalityFloodIsCapped(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MiB of batches")
	}
	const (
		batches   = 10
		perBatch  = 15000
		maxSeries = eval.DefaultMaxSeriesPerHost
	)
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	set, err := rules.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}

	// Reference: what a host with exactly maxSeries series costs. The
	// process's heap also holds the embedded server's pooled buffers,
	// which a collection may free between two readings (one run on a
	// loaded machine measured 0), so the reference is the largest of
	// three measurements.
	refOnce := func() uint64 {
		clk := &clock{}
		a, err := New(Config{Rules: set, Now: clk.Now}, b.js, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := liveHeap()
		send(ctx, a, clk, queryBatch("ref", 1, 0, floodInstances(0, maxSeries-1)))
		grown := liveHeap() - min(before, liveHeap())
		runtime.KeepAlive(a)
		return grown
	}
	ref := max(refOnce(), refOnce(), refOnce())

	clk := &clock{}
	a, _ := newAnalyzer(t, b, set, clk)
	before := liveHeap()
	for i := 1; i <= batches; i++ {
		send(ctx, a, clk, queryBatch("flood", i, 100, floodInstances(i, perBatch)))
		send(ctx, a, clk, queryBatch("good", i, 100, []string{"main"}))
	}
	after := liveHeap()
	runtime.KeepAlive(a)
	grown := int64(after) - int64(before)
	bound := int64(ref)*3/2 + 4<<20
	t.Logf("heap kept by the flood: %.1f MiB (bound %.1f MiB: 1.5 x %.1f MiB kept for a host with %d series, + 4 MiB)",
		float64(grown)/(1<<20), float64(bound)/(1<<20), float64(ref)/(1<<20), maxSeries)
	if grown > bound {
		t.Errorf("the flood grew the heap by %d bytes, more than the bound %d", grown, bound)
	}

	wantRefused := float64(batches*perBatch - (maxSeries - 1))
	if got := testutil.ToFloat64(a.m.seriesRefused.WithLabelValues("c", "flood", eval.RefusedMaxSeries)); got != wantRefused {
		t.Errorf("series refused for c/flood = %v, want %v", got, wantRefused)
	}
	if got := testutil.ToFloat64(a.m.seriesRefused.WithLabelValues("c", "good", eval.RefusedMaxSeries)); got != 0 {
		t.Errorf("series refused for c/good = %v, want 0", got)
	}
	alerts, _ := stored(t, ctx, b.js)
	fired := map[string]bool{}
	for _, al := range alerts {
		if al.Rule == "TCPRetransmitRateHigh" && al.State == wire.StateFiring {
			fired[al.Labels["host"]] = true
		}
	}
	if !fired["good"] || !fired["flood"] {
		t.Errorf("TCPRetransmitRateHigh fired for %v, want good and flood (its known series)", fired)
	}
}

func TestRefusalsAreLoggedOncePerHostPerInterval(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	var logs countingHandler
	a, err := New(Config{Rules: mustRules(t, tcpRule), Now: clk.Now, Limits: Limits{MaxSeriesPerHost: 1, LogInterval: time.Minute}},
		b.js, nil, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	peer := func(p string) wire.Series {
		s := retrans(1)
		s.Labels = []wire.Label{{Name: "peer", Value: p}}
		return s
	}
	for i := 1; i <= 30; i++ {
		send(ctx, a, clk, hostBatch("x", i, peer("a"), peer(fmt.Sprint(i))))
		send(ctx, a, clk, hostBatch("y", i, peer("a"), peer(fmt.Sprint(i))))
	}
	if n := logs.count("host over its cap"); n != 2 {
		t.Fatalf("%d refusal log lines in 30s for 2 hosts, want 2 (once per host per minute)", n)
	}
	for i := 31; i <= 100; i++ {
		send(ctx, a, clk, hostBatch("x", i, peer("a"), peer(fmt.Sprint(i))))
	}
	if n := logs.count("host over its cap"); n != 3 {
		t.Fatalf("%d refusal log lines after 100s, want 3", n)
	}
	if got := testutil.ToFloat64(a.m.seriesRefused.WithLabelValues("c", "x", eval.RefusedMaxSeries)); got != 100 {
		t.Fatalf("refused for c/x = %v, want 100", got)
	}
	// Silent for the idle TTL: the hosts and their series are forgotten.
	clk.Set(clk.Now().Add(2 * time.Hour))
	a.Tick(ctx)
	if n := testutil.CollectAndCount(a.m.seriesRefused); n != 0 {
		t.Fatalf("%d refusal series left after the hosts expired", n)
	}
	if got := testutil.ToFloat64(a.m.hosts); got != 0 {
		t.Fatalf("hosts = %v after expiry, want 0", got)
	}
}

// countingHandler is a slog handler that keeps the messages logged.
type countingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *countingHandler) logger() *slog.Logger { return slog.New(h) }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}

func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// count is how many messages contain s.
func (h *countingHandler) count(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}
