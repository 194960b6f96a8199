package analyzer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

// BenchmarkArrivalToPublication measures the time from a collector
// publishing a batch on core NATS to a subscriber seeing the alert state
// change it causes, stored in JetStream (MCIV_ALERTS): transport,
// decoding, evaluation, the JetStream publish and its ack, and delivery.
// Each op is one batch that fires or resolves an alert (rule with no
// `for`), on an embedded nats-server with file storage. Reported: the
// mean (ns/op) and the median and 99th percentile in microseconds.
func BenchmarkArrivalToPublication(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tb := startBus(b, ctx, true)
	set := mustRules(b, `groups:
  - name: network
    rules:
      - alert: RetransmitsNow
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
`)
	a, err := New(Config{Rules: set}, tb.js, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx, tb.nc) }()
	defer func() { stop(); <-done }()
	select {
	case <-a.Ready():
	case err := <-done:
		b.Fatal(err)
	}
	alerts := make(chan *nats.Msg, 16)
	sub, err := tb.nc.ChanSubscribe(wire.AlertsWildcard, alerts)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	collector, err := bus.Connect(ctx, tb.srv.URL(), bus.ConnectOptions{Name: "collector db-1"})
	if err != nil {
		b.Fatal(err)
	}
	defer collector.Close()
	if err := collector.FlushWithContext(ctx); err != nil {
		b.Fatal(err)
	}

	start := time.Now().Add(-time.Hour)
	var lat []time.Duration
	seq := 0
	b.ResetTimer()
	for b.Loop() {
		v := 10.0 // fires
		if seq%2 == 1 {
			v = 0 // resolves
		}
		batch := &wire.Batch{Cluster: "c", Host: "db-1", Seq: uint64(seq + 1), Start: start.Add(time.Duration(seq) * time.Second),
			Interval: time.Second, Series: []wire.Series{{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: v}}}
		data := wire.EncodeBatch(batch)
		t := time.Now()
		if err := collector.Publish(wire.SamplesSubject("c", "db-1"), data); err != nil {
			b.Fatal(err)
		}
		select {
		case <-alerts:
			lat = append(lat, time.Since(t))
		case <-ctx.Done():
			b.Fatal("no alert")
		}
		seq++
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
