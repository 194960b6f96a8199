package analyzer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

func TestAlertStateSurvivesRestart(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	set := mustRules(t, tcpRule)

	first, _ := newAnalyzer(t, b, set, clk)
	if n, err := first.Restore(ctx); err != nil || n != 0 {
		t.Fatalf("restore on an empty bucket: %d %v", n, err)
	}
	for seq := range 6 { // pending at 0, firing at 3
		send(ctx, first, clk, hostBatch("db-1", seq, retrans(10)))
	}
	if err := first.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	kv, err := b.js.KeyValue(ctx, StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := kv.Keys(ctx); err != nil || len(keys) != 1 {
		t.Fatalf("state keys %v %v", keys, err)
	}
	// first stops; a new analyzer starts on the same bus.
	second, _ := newAnalyzer(t, b, set, clk)
	if n, err := second.Restore(ctx); err != nil || n != 1 {
		t.Fatalf("restored %d %v", n, err)
	}
	if f := testutil.ToFloat64(second.m.activeGauges[0][1]); f != 1 {
		t.Fatalf("firing gauge after restore %v", f)
	}
	// The batch of the last transition, redelivered, is ignored (the
	// host's last Seq is kept with each transition).
	send(ctx, second, clk, hostBatch("db-1", 3, retrans(10)))
	if n := testutil.ToFloat64(second.m.ignored.WithLabelValues("duplicate")); n != 1 {
		t.Fatalf("redelivered batch not ignored: %v", n)
	}
	// The series goes on: still anomalous, then quiet for keep_firing_for.
	for seq := 6; seq < 16; seq++ {
		v := 10.0
		if seq >= 8 {
			v = 0
		}
		send(ctx, second, clk, hostBatch("db-1", seq, retrans(v)))
	}
	if err := second.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	alerts, _ := stored(t, ctx, b.js)
	if len(alerts) != 2 || alerts[0].State != "firing" || alerts[1].State != "resolved" ||
		alerts[0].Fingerprint != alerts[1].Fingerprint || !alerts[0].StartsAt.Equal(alerts[1].StartsAt) {
		t.Fatalf("stream: %+v", alerts)
	}
	// Resolved: the state is gone from the bucket.
	if _, err := kv.Get(ctx, alerts[0].Fingerprint); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("resolved alert still in the bucket: %v", err)
	}
	// A third start restores nothing and does not re-fire.
	third, _ := newAnalyzer(t, b, set, clk)
	if n, err := third.Restore(ctx); err != nil || n != 0 {
		t.Fatalf("third restore %d %v", n, err)
	}
}

// The same through Run and NATS: fire, stop the analyzer, start another
// on the same bus, go on: exactly one firing and one resolved stored.
func TestRestartThroughRun(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	set := mustRules(t, tcpRule)
	collector, err := bus.Connect(ctx, b.srv.URL(), bus.ConnectOptions{Name: "collector db-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer collector.Close()
	cons, err := b.js.OrderedConsumer(ctx, bus.AlertsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	next := func() *wire.Alert {
		t.Helper()
		msg, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("no alert: %v", err)
		}
		al, err := wire.DecodeAlert(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		return al
	}
	start := func() (stop func()) {
		a, err := New(Config{Rules: set, Now: func() time.Time { return t0 }}, b.js, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(runCtx, b.nc) }()
		select {
		case <-a.Ready():
		case err := <-done:
			t.Fatalf("Run: %v", err)
		}
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	publish := func(from, to int, v float64) {
		t.Helper()
		for seq := from; seq < to; seq++ {
			if err := collector.Publish(wire.SamplesSubject("c", "db-1"), wire.EncodeBatch(hostBatch("db-1", seq, retrans(v)))); err != nil {
				t.Fatal(err)
			}
		}
		if err := collector.FlushWithContext(ctx); err != nil {
			t.Fatal(err)
		}
	}

	stop := start()
	publish(0, 6, 10)
	if al := next(); al.State != wire.StateFiring {
		t.Fatalf("first: %+v", al)
	}
	stop()

	stop = start()
	defer stop()
	publish(6, 8, 10)
	publish(8, 16, 0)
	if al := next(); al.State != wire.StateResolved {
		t.Fatalf("after the restart: %+v", al)
	}
	if alerts, _ := stored(t, ctx, b.js); len(alerts) != 2 {
		t.Fatalf("stored %d alerts", len(alerts))
	}
}
