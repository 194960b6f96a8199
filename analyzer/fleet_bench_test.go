package analyzer

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// BenchmarkFleetThroughput measures how many host batches per second one
// fleet-mode analyzer evaluates from the partitioned input stream on the
// embedded server: MCIV_BENCH_HOSTS hosts (default 2000) publish
// MCIV_BENCH_ROUNDS batches each (default 5), stored first, then drained.
// It reports batches/s (the number of hosts one analyzer keeps up with at
// one batch per second).
func BenchmarkFleetThroughput(b *testing.B) {
	hosts, rounds := envN("MCIV_BENCH_HOSTS", 2000), envN("MCIV_BENCH_ROUNDS", 5)
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		tb := startBus(b, ctx, true)
		if _, err := bus.EnsureInputStream(ctx, tb.js, bus.InputOptions{Partitions: 8}); err != nil {
			b.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		set, err := rules.LoadDefault()
		if err != nil {
			b.Fatal(err)
		}
		a, err := New(Config{Rules: set, Fleet: FleetConfig{Partitions: 8, Member: "bench"}}, tb.js, reg, nil)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		rctx, stop := context.WithCancel(ctx)
		go func() { done <- a.Run(rctx, tb.nc) }()
		<-a.Ready()
		start := time.Now()
		for r := range rounds {
			for h := range hosts {
				host := "h" + strconv.Itoa(h)
				bt := &wire.Batch{Cluster: "c", Host: host, Seq: uint64(r), Start: t0.Add(time.Duration(r) * time.Second), Interval: time.Second,
					Series: []wire.Series{retrans(1), {Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}}}
				if _, err := tb.js.PublishAsync(wire.SamplesSubject("c", host), wire.EncodeBatch(bt), jetstream.WithMsgID(fmt.Sprint(host, r))); err != nil {
					b.Fatal(err)
				}
			}
			<-tb.js.PublishAsyncComplete()
		}
		want := float64(hosts * rounds)
		for testutil.ToFloat64(a.m.batches) < want {
			if ctx.Err() != nil {
				b.Fatalf("evaluated %v of %v batches", testutil.ToFloat64(a.m.batches), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		el := time.Since(start)
		b.ReportMetric(testutil.ToFloat64(a.m.batches)/el.Seconds(), "batches/s")
		stop()
		<-done
		cancel()
	}
}

func envN(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
