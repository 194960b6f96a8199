package analyzer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fleetAnalyzer(t *testing.T, ctx context.Context, b *testBus, member string) (*Analyzer, *prometheus.Registry, context.CancelFunc, chan error) {
	t.Helper()
	nc, err := bus.Connect(ctx, b.srv.URL(), bus.ConnectOptions{Name: member})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := bus.JetStream(nc)
	reg := prometheus.NewRegistry()
	a, err := New(Config{Rules: mustRules(t, tcpRule), Fleet: FleetConfig{
		Partitions: 4, Member: member, PinnedTTL: 2 * time.Second, CheckpointInterval: 300 * time.Millisecond,
	}}, js, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx, nc) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("%s: %v", member, err)
	}
	return a, reg, cancel, done
}

// TestFleetTakeover: two analyzers share four partitions; the owner of
// everything stops in the middle of a firing alert; the other takes over
// from the checkpoint and resolves it: the alert fires once and resolves
// once, nothing else is announced, and a missing batch is counted.
func TestFleetTakeover(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	pub := func(seq int) {
		for h := range 12 {
			host := fmt.Sprintf("h%d", h)
			if host == "h5" && seq == 25 {
				continue // lost
			}
			v := 0.0
			if host == "h3" && seq >= 5 && seq < 20 {
				v = 10
			}
			bt := hostBatch(host, seq, retrans(v))
			if err := b.nc.Publish(wire.SamplesSubject("c", host), wire.EncodeBatch(bt)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	a, _, stopA, doneA := fleetAnalyzer(t, ctx, b, "an-a")
	pub(0)
	waitFor(t, 10*time.Second, "an-a to own the partitions", func() bool { return len(a.Owned()) == 4 })
	bAn, regB, stopB, doneB := fleetAnalyzer(t, ctx, b, "an-b")
	defer func() { stopB(); <-doneB }()
	for seq := 1; seq < 12; seq++ {
		pub(seq)
	}
	waitFor(t, 10*time.Second, "h3 firing", func() bool {
		al, _ := stored(t, ctx, b.js)
		return len(al) == 1
	})
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	for seq := 12; seq < 40; seq++ {
		pub(seq)
	}
	waitFor(t, 20*time.Second, "an-b to own the partitions", func() bool { return len(bAn.Owned()) == 4 })
	waitFor(t, 20*time.Second, "h3 resolved", func() bool {
		al, _ := stored(t, ctx, b.js)
		return len(al) >= 2
	})
	waitFor(t, 10*time.Second, "the gap counted", func() bool {
		return testutil.ToFloat64(bAn.fm.missed.WithLabelValues("c", "h5")) == 1
	})
	time.Sleep(500 * time.Millisecond) // anything extra would show now
	al, _ := stored(t, ctx, b.js)
	if len(al) != 2 || al[0].State != wire.StateFiring || al[1].State != wire.StateResolved || al[0].Labels["host"] != "h3" {
		for _, x := range al {
			t.Logf("%s %s", x.Labels["host"], x.State)
		}
		t.Fatalf("%d alerts stored, want h3 firing then resolved", len(al))
	}
	if n := testutil.ToFloat64(bAn.fm.takeovers); n != 4 {
		t.Errorf("an-b took over %v partitions", n)
	}
	mfs, err := regB.Gather()
	if err != nil {
		t.Fatal(err)
	}
	missedHosts, zeroHosts := 0, 0
	for _, mf := range mfs {
		if mf.GetName() != "mciv_analyzer_batches_missed_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetCounter().GetValue() > 0 {
				missedHosts++
			} else {
				zeroHosts++
			}
		}
	}
	if missedHosts != 1 || zeroHosts == 0 {
		t.Errorf("%d hosts with missed batches (want 1), %d at zero (want the other hosts evaluated)", missedHosts, zeroHosts)
	}
}

// TestHoldWhileBehind: absence rules are held while the analyzer reads
// messages stored longer ago than maxReadLag, and not while it is caught up.
func TestHoldWhileBehind(t *testing.T) {
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	a := &Analyzer{cfg: Config{Now: func() time.Time { return now }, Fleet: FleetConfig{AbsenceGrace: 10 * time.Second}}}
	fm, err := newFleetMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	a.fm = fm
	p := &partitionRunner{f: &fleet{a: a}}
	p.holdWhileBehind(now.Add(-time.Second))
	if a.grace.active(now) {
		t.Fatal("held absence rules while caught up")
	}
	p.holdWhileBehind(now.Add(-5 * time.Second))
	if !a.grace.active(now.Add(9*time.Second)) || a.grace.active(now.Add(11*time.Second)) {
		t.Fatal("a read 5 s behind did not hold absence rules for the grace period")
	}
}
