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
// batches with a few retransmits, 72–88 queries/s of ~10 ms and ~2 ms I/O;
// every 20 to 40 s a short retransmit blip (see blipBatches), and half-way
// through the longest such blip (worstBlip); one slow query (2 s) and one
// disk latency spike (0.8 s p99, above DiskLatencyHigh's 0.5 s) in single
// batches. It returns the batches in order, and the time the longest
// blip begins.
func noisyHost(seed uint64, quiet time.Duration) (batches []*wire.Batch, worst time.Duration) {
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
	blipOf := func(steps []evStep) {
		for _, st := range steps {
			n := int(st.d / (12 * time.Millisecond)) // ~80 queries/s
			add(st.d, st.n, normal(n), io(n/2))
		}
	}
	slowAt, spikeAt := int(quiet/time.Second)/3, 2*int(quiet/time.Second)/3
	worstAt := int(quiet/time.Second) / 2
	for s := 0; start.Sub(t0) < quiet; s++ {
		if s == nextBlip && (s == slowAt || s == spikeAt || s == worstAt) {
			nextBlip++ // one noise at a time
		}
		switch {
		case s == nextBlip:
			nextBlip += 20 + rng.IntN(20)
			blipOf(blipBatches(rng))
		case s == worstAt:
			worst = start.Sub(t0)
			blipOf(worstBlip())
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
	return out, worst
}

// blipBatches is a 300 ms blip of 20 % packet loss on a stream of 100
// segments/s (the one of `make bench-latency`) as the collector cuts it,
// shaped after the batches the benchmark recorded (scripts/bench-latency.sh
// --batches). The retransmits fall within about 700 ms of the blip's
// start: TCP's loss probes some 50 ms in, RTOs of 200 ms after the
// segments lost in its 300 ms, and one back-off of 400 ms for the few
// retransmits themselves lost. The first retransmit cuts the running
// batch short, which dilutes it (250–650 ms holding 1, or 2 if it is at
// least 400 ms: under 5/s); early batches of 250 ms follow while
// retransmits go on, at most three, holding 1 to 3 each (4–12/s, about
// the benchmark's fault's 12/s), the third (the back-offs) 1 or 2; then
// the rest of the second is quiet.
func blipBatches(rng *rand.Rand) []evStep {
	first := 250*time.Millisecond + time.Duration(rng.IntN(400))*time.Millisecond
	n := 1.0
	if first >= 400*time.Millisecond {
		n += float64(rng.IntN(2))
	}
	steps := []evStep{{first, n}}
	for i := range 1 + rng.IntN(3) {
		n := 1 + rng.IntN(3)
		if i == 2 {
			n = 1 + rng.IntN(2)
		}
		steps = append(steps, evStep{250 * time.Millisecond, float64(n)})
	}
	return append(steps, evStep{time.Second, 0})
}

// worstBlip is the longest blip the benchmark's quiet period makes, as
// its recordings show it (one paged in 16 blips with evidence {need: 1s,
// min: 500ms}): after the diluted batch, three early batches of 3, 3 and
// 2 retransmits (12, 12 and 8/s: 750 ms of support, weighted 1.6 s) and a
// straggler. It is over after 1.25 s, as the loss of 300 ms allows.
func worstBlip() []evStep {
	return []evStep{{450 * time.Millisecond, 1}, {250 * time.Millisecond, 3}, {250 * time.Millisecond, 3},
		{250 * time.Millisecond, 2}, {250 * time.Millisecond, 1}, {time.Second, 0}, {time.Second, 0}}
}

// recordedFault is 20 % loss lasting as the benchmark's faults do, as
// the collector cut them: the first retransmit dilutes the running batch
// (583 ms holding 1; the loss began 220 ms before its end), then early
// batches of 250 ms holding 1 to 4 (about 12/s) as long as the loss
// lasts.
func recordedFault() (steps []evStep, lossStart time.Duration) {
	steps = []evStep{{583 * time.Millisecond, 1}}
	for _, n := range []float64{4, 3, 3, 2, 3, 3, 3, 1, 4, 3, 3, 2} {
		steps = append(steps, evStep{250 * time.Millisecond, n})
	}
	return steps, 583*time.Millisecond - 220*time.Millisecond
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

// withEvidence is set with rule's evidence replaced by ev.
func withEvidence(set *rules.Set, rule string, ev rules.Evidence) *rules.Set {
	out := &rules.Set{}
	for _, g := range set.Groups {
		ng := g
		ng.Rules = nil
		for _, r := range g.Rules {
			c := *r
			if c.Alert == rule {
				c.Evidence = &ev
			}
			ng.Rules = append(ng.Rules, &c)
		}
		out.Groups = append(out.Groups, ng)
	}
	return out
}

// appendRetransmits continues batches with host db1's batches of steps
// (retransmits only) and returns them with the time the first begins.
func appendRetransmits(batches []*wire.Batch, steps []evStep) ([]*wire.Batch, time.Duration) {
	last := batches[len(batches)-1]
	start, seq := last.Start.Add(last.Interval), last.Seq
	from := start.Sub(t0)
	for _, st := range steps {
		seq++
		batches = append(batches, &wire.Batch{Cluster: "c", Host: "db1", Seq: seq, Start: start,
			Interval: st.d, Series: []wire.Series{retrans1(st.n)}})
		start = start.Add(st.d)
	}
	return batches, from
}

// TestDefaultRulesQuietThroughNoise: ten minutes of benign noise (short
// retransmit blips shaped as the latency benchmark's, the longest of them
// included, one slow query, one disk latency spike) raise no alert with
// the default rules, while the same rules without their evidence or
// `for` alert on it (the noise is noise the rules see), and the
// retransmit rule with the evidence it had before ({need: 1s, min:
// 500ms}) paged on the longest blip, as it did once in 16 blips in the
// benchmark; a real retransmit storm after the quiet period fires at
// once, and the benchmark's fault (about 12/s) within 1.25 s of its loss.
func TestDefaultRulesQuietThroughNoise(t *testing.T) {
	set, err := rules.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	before := withEvidence(set, "TCPRetransmitRateHigh", rules.Evidence{Need: time.Second, Min: 500 * time.Millisecond})
	for seed := range uint64(5) {
		batches, worstAt := noisyHost(seed, 10*time.Minute)
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
		// It pages at the end of the third early batch (1.2 s in).
		worst := (worstAt + 1200*time.Millisecond).String()
		if fired := strings.Join(alertsOf(t, before, batches), " "); !strings.Contains(fired, "TCPRetransmitRateHigh@"+worst) {
			t.Fatalf("seed %d: with evidence {need: 1s, min: 500ms} the longest blip (at %s) did not page: %s", seed, worst, fired)
		}
		// A storm: 10 retransmits per 250 ms batch (40/s) for 3 s.
		storm, faultAt := appendRetransmits(batches, repeat(12, evStep{250 * time.Millisecond, 10}))
		fired := alertsOf(t, set, storm)
		want := "TCPRetransmitRateHigh@" + (faultAt + time.Second).String()
		if len(fired) != 1 || fired[0] != want {
			t.Fatalf("seed %d: storm gave %v, want [%s]", seed, fired, want)
		}
		// The benchmark's fault: the loss begins lossStart into its
		// first batch.
		steps, lossStart := recordedFault()
		fault, from := appendRetransmits(batches, steps)
		fired = alertsOf(t, set, fault)
		if len(fired) != 1 || !strings.HasPrefix(fired[0], "TCPRetransmitRateHigh@") {
			t.Fatalf("seed %d: the benchmark's fault gave %v, want TCPRetransmitRateHigh", seed, fired)
		}
		at, err := time.ParseDuration(strings.TrimPrefix(fired[0], "TCPRetransmitRateHigh@"))
		if err != nil {
			t.Fatal(err)
		}
		// The page is decided at the end of the batch that fires it.
		if paged := at - from - lossStart; paged > 1250*time.Millisecond {
			t.Errorf("seed %d: the benchmark's fault paged %s after its loss began, want at most 1.25 s", seed, paged)
		}
	}
}
