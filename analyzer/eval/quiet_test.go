package eval

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// noisyHost generates ten minutes of a host's batches with benign
// background noise, shaped like what the collector publishes: one-second
// batches with a few retransmits, 72–88 queries/s of ~10 ms and ~2 ms I/O; every 20 to
// 40 s a short retransmit blip, which the collector cuts into a 250 ms
// early batch (notable_interval) holding 4 to 12 retransmits (16–48/s,
// far above the 5/s threshold); one slow query (2 s) and one disk
// latency spike (0.8 s p99, above DiskLatencyHigh's 0.5 s) in single
// batches. It returns the batches in order.
func noisyHost(seed uint64, quiet time.Duration) []*wire.Batch {
	rng := rand.New(rand.NewPCG(seed, 1))
	var (
		out   []*wire.Batch
		seq   uint64
		start = t0
	)
	add := func(d time.Duration, retrans float64, queries, ios []float64) {
		seq++
		var series []wire.Series
		if retrans > 0 {
			series = append(series, retrans1(retrans))
		}
		series = append(series, hist("db_query_seconds", []wire.Label{{Name: "instance", Value: "pg15"}}, queries))
		series = append(series, hist("disk_io_seconds", []wire.Label{{Name: "device", Value: "vda"}, {Name: "op", Value: "write"}}, ios))
		out = append(out, &wire.Batch{Cluster: "c", Host: "db1", Seq: seq, Start: start, Interval: d, Series: series})
		start = start.Add(d)
	}
	normal := func(n int) []float64 {
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = 0.01 * (0.8 + 0.4*rng.Float64())
		}
		return vs
	}
	io := func(n int) []float64 {
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = 0.002 * (0.8 + 0.4*rng.Float64())
		}
		return vs
	}
	nextBlip := 20 + rng.IntN(20)
	slowAt, spikeAt := int(quiet/time.Second)/3, 2*int(quiet/time.Second)/3
	for s := 0; start.Sub(t0) < quiet; s++ {
		switch {
		case s == nextBlip:
			nextBlip += 20 + rng.IntN(20)
			add(250*time.Millisecond, float64(4+rng.IntN(9)), normal(18+rng.IntN(5)), io(10))
			add(750*time.Millisecond, float64(rng.IntN(3)), normal(54+rng.IntN(13)), io(30))
		case s == slowAt:
			add(time.Second, float64(rng.IntN(3)), append(normal(71+rng.IntN(17)), 2), io(40))
		case s == spikeAt:
			ios := io(40)
			ios = append(ios, 0.8, 0.8, 0.9) // a burst of slow writes: p99 0.8s
			add(time.Second, float64(rng.IntN(3)), normal(72+rng.IntN(17)), ios)
		default:
			add(time.Second, float64(rng.IntN(3)), normal(72+rng.IntN(17)), io(40))
		}
	}
	return out
}

func retrans1(n float64) wire.Series {
	return wire.Series{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: n}
}

func hist(signal string, labels []wire.Label, vs []float64) wire.Series {
	var r histo.Recorder
	for _, v := range vs {
		r.Observe(v)
	}
	return wire.Series{Signal: signal, Kind: wire.KindHistogram, Labels: labels, Hist: r.Snapshot()}
}

// alertsOf evaluates batches and returns the rules that fired.
func alertsOf(t *testing.T, set *rules.Set, batches []*wire.Batch) []string {
	t.Helper()
	e := New(set, Options{})
	var fired []string
	for _, b := range batches {
		rep, err := e.Eval(b, b.Start.Add(b.Interval))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range rep.Alerts {
			if a.State == wire.StateFiring {
				fired = append(fired, a.Rule+"@"+a.StartsAt.Sub(t0).String())
			}
		}
	}
	return fired
}

// hasty is set with every rule's evidence and `for` removed: each rule
// fires on its first anomalous batch.
func hasty(set *rules.Set) *rules.Set {
	out := &rules.Set{}
	for _, g := range set.Groups {
		ng := g
		ng.Rules = nil
		for _, r := range g.Rules {
			c := *r
			c.Evidence, c.For = nil, 0
			ng.Rules = append(ng.Rules, &c)
		}
		out.Groups = append(out.Groups, ng)
	}
	return out
}

// TestDefaultRulesQuietThroughNoise: ten minutes of benign noise (short
// retransmit blips in early batches, one slow query, one disk latency
// spike) raise no alert with the default rules, while the same rules
// without their evidence or `for` alert on it (the noise is noise the
// rules see), and a real retransmit storm after the quiet period fires
// at once.
func TestDefaultRulesQuietThroughNoise(t *testing.T) {
	set, err := rules.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(5) {
		batches := noisyHost(seed, 10*time.Minute)
		if fired := alertsOf(t, set, batches); len(fired) != 0 {
			t.Fatalf("seed %d: default rules alerted on noise: %v", seed, fired)
		}
		if fired := alertsOf(t, hasty(set), batches); len(fired) < 10 || testing.Verbose() {
			t.Logf("seed %d without evidence: %v", seed, fired)
		}
		hastyFired := strings.Join(alertsOf(t, hasty(set), batches), " ")
		for _, rule := range []string{"TCPRetransmitRateHigh", "QueryLatencyHigh", "DiskLatencyHigh"} {
			if strings.Count(hastyFired, rule+"@") == 0 {
				t.Fatalf("seed %d: without evidence or for, %s did not see the noise: %s", seed, rule, hastyFired)
			}
		}
		// A storm: 10 retransmits per 250 ms batch (40/s) for 3 s.
		last := batches[len(batches)-1]
		start, seq := last.Start.Add(last.Interval), last.Seq
		faultAt := start.Sub(t0)
		for range 12 {
			seq++
			batches = append(batches, &wire.Batch{Cluster: "c", Host: "db1", Seq: seq, Start: start,
				Interval: 250 * time.Millisecond, Series: []wire.Series{retrans1(10)}})
			start = start.Add(250 * time.Millisecond)
		}
		fired := alertsOf(t, set, batches)
		want := "TCPRetransmitRateHigh@" + (faultAt + 750*time.Millisecond).String()
		if len(fired) != 1 || fired[0] != want {
			t.Fatalf("seed %d: storm gave %v, want [%s]", seed, fired, want)
		}
	}
}
