package eval

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// benchHosts × benchSeriesPerHost = 100,000 series, each host sending
// one batch per interval with every signal the collector produces.
const (
	benchHosts         = 1000
	benchSeriesPerHost = 100
)

// benchBatches returns one round of batches (one per host) at round r:
// 100 series per host across every default signal, histograms with a few
// buckets, values that wander but stay normal.
func benchBatches(round int) []*wire.Batch {
	hist := func(base float64, n int) *wire.Histogram {
		var rec histo.Recorder
		for k := range n {
			rec.Observe(base * (1 + float64((k*7+round)%10)/20))
		}
		return rec.Snapshot()
	}
	out := make([]*wire.Batch, benchHosts)
	for h := range benchHosts {
		b := &wire.Batch{Cluster: fmt.Sprintf("c%d", h%10), Host: fmt.Sprintf("db-%04d", h), Seq: uint64(round + 1),
			Start: t0.Add(time.Duration(round) * time.Second), Interval: time.Second}
		add := func(signal string, kind wire.Kind, v float64, hh *wire.Histogram, labels ...wire.Label) {
			b.Series = append(b.Series, wire.Series{Signal: signal, Kind: kind, Value: v, Hist: hh, Labels: labels})
		}
		peer := func(i int) wire.Label {
			return wire.Label{Name: "peer", Value: fmt.Sprintf("10.0.%d.%d:5432", i/250, i%250)}
		}
		for i := range 40 {
			add("tcp_retransmits_total", wire.KindCounter, float64((i+round)%3), nil, wire.Label{Name: "local_port", Value: "5432"}, peer(i))
		}
		for i := range 10 {
			add("tcp_resets_total", wire.KindCounter, 1, nil, wire.Label{Name: "direction", Value: []string{"sent", "received"}[i%2]},
				wire.Label{Name: "local_port", Value: "5432"}, peer(i))
			add("tcp_connect_errors_total", wire.KindCounter, 0.5, nil, peer(i))
			add("tcp_connect_seconds", wire.KindHistogram, 0, hist(0.001, 3), peer(i))
			add("tcp_rtt_seconds", wire.KindHistogram, 0, hist(0.0002, 3), peer(i))
			add("disk_io_seconds", wire.KindHistogram, 0, hist(0.002, 4),
				wire.Label{Name: "device", Value: fmt.Sprintf("nvme%dn1", i/2)}, wire.Label{Name: "op", Value: []string{"read", "write"}[i%2]})
		}
		for i := range 9 {
			add("db_query_seconds", wire.KindHistogram, 0, hist(0.005, 6),
				wire.Label{Name: "instance", Value: fmt.Sprintf("pg%d", i%3)}, wire.Label{Name: "protocol", Value: "postgres"})
		}
		add("mciv_collector_up", wire.KindGauge, 1, nil)
		if len(b.Series) != benchSeriesPerHost {
			panic(len(b.Series))
		}
		out[h] = b
	}
	return out
}

func defaultRules(b *testing.B) *rules.Set {
	set, err := rules.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	return set
}

// BenchmarkEval100kSeries: samples (series) per second one core evaluates
// with 100,000 series under the default rules. One op is one interval of
// every host: 100,000 samples.
func BenchmarkEval100kSeries(b *testing.B) {
	const rounds = 8 // distinct rounds, so that values vary
	batches := make([][]*wire.Batch, rounds)
	for r := range rounds {
		batches[r] = benchBatches(r)
	}
	e := New(defaultRules(b), Options{})
	now := t0
	round := 0
	feed := func() {
		bs := batches[round%rounds]
		for _, bt := range bs {
			bt.Seq = uint64(round + 1)
			bt.Start = t0.Add(time.Duration(round) * time.Second)
			if _, err := e.Eval(bt, now); err != nil {
				b.Fatal(err)
			}
		}
		round++
	}
	feed() // create every group
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		feed()
	}
	samples := float64(b.N) * benchHosts * benchSeriesPerHost
	b.ReportMetric(samples/b.Elapsed().Seconds(), "samples/s")
	// The machines are shared: CPU time says what one core does when it
	// is ours (GC included), wall time what we got.
	if cpu := (cpuTime() - cpu0).Seconds(); cpu > 0 {
		b.ReportMetric(samples/cpu, "samples/cpu-s")
	}
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMemoryPerSeries: heap held by the engine per series once every
// series' alert group and detector exist (the batches are not counted).
func BenchmarkMemoryPerSeries(b *testing.B) {
	batches := benchBatches(0)
	set := defaultRules(b)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e := New(set, Options{})
		for r := range 3 {
			for _, bt := range batches {
				bt.Seq = uint64(r + 1)
				bt.Start = t0.Add(time.Duration(r) * time.Second)
				if _, err := e.Eval(bt, t0); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(benchHosts*benchSeriesPerHost), "bytes/series")
		runtime.KeepAlive(e)
	}
}
