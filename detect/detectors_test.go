package detect

import (
	"math"
	"testing"
	"time"
)

// scenarioConfig is a configuration of each type suited to a 10 s step,
// N(100, 1) series.
func scenarioConfig(typ string) Config {
	c := Config{Type: typ, Baseline: time.Hour, Warmup: 10 * time.Minute, Threshold: 5}
	switch typ {
	case "seasonal":
		c.Slot, c.Period, c.Baseline = time.Hour, time.Hour, 5*time.Hour
	case "rate_of_change":
		c = Config{Type: typ, Window: 5 * time.Minute, Threshold: 0.05}
	}
	return c
}

func TestDetectorsScenarios(t *testing.T) {
	const step = 10 * time.Second
	const at = 1500
	for _, tc := range []struct {
		name   string
		mutate func([]float64)
		// within is how many samples after at the detector must fire;
		// types listed in quiet must not fire at all.
		within int
		quiet  map[string]bool
	}{
		{name: "normal", mutate: func([]float64) {}, quiet: map[string]bool{"zscore": true, "robust_zscore": true, "ewma": true, "cusum": true, "seasonal": true, "rate_of_change": true}},
		// auto: at steps finer than 2 minutes a lone sample never fires
		// (TestAutoFineStepSpikeNeedsConfirmation).
		{name: "spike", mutate: func(v []float64) { v[at] += 20 }, within: 1, quiet: map[string]bool{"ewma": false, "auto": true}},
		{name: "step", mutate: func(v []float64) {
			for i := at; i < len(v); i++ {
				v[i] += 10
			}
		}, within: 5},
		{name: "drop", mutate: func(v []float64) {
			for i := at; i < len(v); i++ {
				v[i] -= 10
			}
		}, within: 5},
	} {
		for _, typ := range statTypes() {
			t.Run(tc.name+"/"+typ, func(t *testing.T) {
				vs := noise(7, 2000, 100, 1)
				tc.mutate(vs)
				rs := feed(mustSpec(t, scenarioConfig(typ)).New(), vs, step)
				first := firstFiring(rs, 0)
				if tc.within == 0 || tc.quiet[typ] {
					if tc.within == 0 && first >= 0 {
						t.Fatalf("fired at %d on %s data (%+v)", first, tc.name, rs[first])
					}
					return
				}
				if first < at || first >= at+tc.within {
					t.Fatalf("first firing at %d, want in [%d,%d)", first, at, at+tc.within)
				}
				r := rs[first]
				if r.Score < 0.5 || r.Score > 1 || math.Abs(r.Baseline-100) > 2 {
					t.Fatalf("firing result %+v: want score >= 0.5 and baseline near 100", r)
				}
			})
		}
	}
}

func TestDetectorsScoreInRange(t *testing.T) {
	vs := noise(3, 3000, 0, 1)
	vs[1000], vs[2000] = 1e300, -1e300
	for _, typ := range statTypes() {
		for _, r := range feed(mustSpec(t, scenarioConfig(typ)).New(), vs, time.Second) {
			if !(r.Score >= 0 && r.Score <= 1) {
				t.Fatalf("%s: score %v outside [0,1]", typ, r.Score)
			}
		}
	}
}

func TestDetectorsWarmup(t *testing.T) {
	for _, typ := range statTypes() {
		t.Run(typ, func(t *testing.T) {
			c := scenarioConfig(typ)
			c.Warmup = time.Hour
			vs := noise(1, 720, 100, 1)
			for i := 300; i < 330; i++ {
				vs[i] += 50 // within the warm-up
			}
			rs := feed(mustSpec(t, c).New(), vs, 10*time.Second)
			for i, r := range rs[:359] {
				if r.Firing || r.Score != 0 {
					t.Fatalf("row %d inside the warm-up: %+v", i, r)
				}
			}
		})
	}
}

func TestDetectorsNonFiniteIgnored(t *testing.T) {
	for _, typ := range append(statTypes(), "absence") {
		t.Run(typ, func(t *testing.T) {
			spec := mustSpec(t, scenarioConfig(typ))
			vs := noise(5, 1000, 100, 1)
			vs[700] += 30
			clean, dirty := spec.New(), spec.New()
			step := 10 * time.Second
			bad := []float64{math.NaN(), math.Inf(1), math.Inf(-1)}
			nbad := 0
			for i, v := range vs {
				at := t0.Add(time.Duration(i) * step)
				want := clean.Observe(at, v)
				if i%3 == 0 {
					r := dirty.Observe(at.Add(-time.Second), bad[i%len(bad)])
					nbad++
					if (r.Score != 0 && typ != "absence") || math.IsNaN(r.Baseline) || math.IsNaN(r.Threshold) {
						t.Fatalf("row %d: non-finite value gave %+v", i, r)
					}
				}
				if got := dirty.Observe(at, v); got != want {
					t.Fatalf("row %d: %+v with non-finite values between, %+v without", i, got, want)
				}
			}
			if n := dirty.(Ignorer).Ignored(); n != uint64(nbad) {
				t.Fatalf("ignored %d, want %d", n, nbad)
			}
		})
	}
}

func TestDetectorsDeterministic(t *testing.T) {
	vs := noise(11, 5000, 10, 2)
	for i := 2500; i < 2600; i++ {
		vs[i] *= 3
	}
	for _, typ := range statTypes() {
		spec := mustSpec(t, scenarioConfig(typ))
		a, b := feed(spec.New(), vs, time.Second), feed(spec.New(), vs, time.Second)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s row %d: %+v then %+v", typ, i, a[i], b[i])
			}
		}
	}
}

func TestDetectorsGapNoFalseAlarm(t *testing.T) {
	for _, typ := range statTypes() {
		t.Run(typ, func(t *testing.T) {
			c := scenarioConfig(typ)
			c.Threshold *= 1.5 // well above the noise: only a collapsed baseline fires
			d := mustSpec(t, c).New()
			vs := noise(9, 2000, 100, 1)
			for i, v := range vs {
				at := t0.Add(time.Duration(i) * 10 * time.Second)
				if i >= 1000 {
					at = at.Add(3 * time.Hour) // three hours without data
				}
				if r := d.Observe(at, v); r.Firing {
					t.Fatalf("fired at row %d after a gap: %+v", i, r)
				}
			}
		})
	}
}

func TestDetectorsHysteresis(t *testing.T) {
	// A series that sits just above the baseline's threshold and then
	// oscillates around it: once firing, the detector must not flap.
	for _, typ := range []string{"zscore", "robust_zscore", "ewma", "seasonal"} {
		t.Run(typ, func(t *testing.T) {
			c := scenarioConfig(typ)
			c.Baseline = 1000 * time.Hour // a baseline that barely moves
			c.Threshold = 4
			d := mustSpec(t, c).New()
			vs := noise(13, 1200, 100, 1)
			rs := feed(d, vs, 10*time.Second)
			base, lim := rs[len(rs)-1].Baseline, rs[len(rs)-1].Threshold
			sd := (lim - base) / 4
			changes, firing := 0, false
			for i := range 20 {
				z := 4.3 // above, then around the threshold: 4.3, 3.7, 4.3, ...
				if i%2 == 1 {
					z = 3.7
				}
				if typ == "ewma" {
					z -= 0.5 // the smoothed value hovers lower
				}
				r := d.Observe(t0.Add(time.Duration(1200+i)*10*time.Second), base+z*sd)
				if r.Firing != firing {
					changes++
					firing = r.Firing
				}
			}
			if changes > 1 {
				t.Fatalf("firing changed %d times while oscillating around the threshold", changes)
			}
		})
	}
}

func TestDetectorsDirectionAndMinDelta(t *testing.T) {
	vs := noise(17, 1000, 100, 0.001) // tiny variance
	vs[800] = 100.05                  // 50 sd up, but only 0.05 absolute
	vs[900] = 99.9                    // 100 sd down
	for _, tc := range []struct {
		dir      Direction
		minDelta float64
		at800    bool
		at900    bool
	}{
		{Both, 0, true, true},
		{Up, 0, true, false},
		{Down, 0, false, true},
		{Both, 0.08, false, true},
		{Both, 1, false, false},
	} {
		c := scenarioConfig("zscore")
		c.Direction, c.MinDelta = tc.dir, tc.minDelta
		rs := feed(mustSpec(t, c).New(), vs, 10*time.Second)
		if rs[800].Firing != tc.at800 || rs[900].Firing != tc.at900 {
			t.Errorf("direction %s min_delta %v: firing at 800=%v 900=%v, want %v %v", tc.dir, tc.minDelta, rs[800].Firing, rs[900].Firing, tc.at800, tc.at900)
		}
		if tc.dir == Down && rs[900].Threshold >= rs[900].Baseline {
			t.Errorf("direction down: threshold %v not below baseline %v", rs[900].Threshold, rs[900].Baseline)
		}
	}
}

func TestDetectorsBoundedMemory(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	vs := noise(19, 4096, 50, 5)
	for _, typ := range append(statTypes(), "absence", "threshold") {
		c := Default(typ)
		if typ == "threshold" {
			c = Config{Type: typ, Op: OpGT, Value: 60}
		}
		d := mustSpec(t, c).New()
		sz := d.(Sizer)
		// Fill every window first; then the size must not change.
		for i := range 200_000 {
			d.Observe(t0.Add(time.Duration(i)*time.Second), vs[i%len(vs)])
		}
		before := sz.Size()
		m := n
		if typ == "auto" {
			m = n / 10 // fixed arrays only; its cost is in the calibration
		}
		for i := range m {
			d.Observe(t0.Add(time.Duration(200_000+i)*time.Second), vs[i%len(vs)]*(1+float64(i%7)))
		}
		limit := 1024
		if typ == "auto" {
			limit = 4096 // five calibrated statistics, the hours of a week, the period finder
		}
		if after := sz.Size(); after != before || before > limit {
			t.Errorf("%s: state %d bytes, then %d after %d samples (want constant, <= %d)", typ, before, after, n, limit)
		}
		t.Logf("%s: %d bytes", typ, before)
	}
}

func TestDetectorsObserveDoesNotAllocate(t *testing.T) {
	vs := noise(23, 1024, 10, 1)
	for _, typ := range append(statTypes(), "absence") {
		d := mustSpec(t, Default(typ)).New()
		i := 0
		allocs := testing.AllocsPerRun(5000, func() {
			d.Observe(t0.Add(time.Duration(i)*time.Minute), vs[i%len(vs)])
			i++
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Observe", typ, allocs)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	vs := noise(29, 4096, 10, 1)
	for _, typ := range append(statTypes(), "absence", "threshold") {
		c := Default(typ)
		if typ == "threshold" {
			c = Config{Type: typ, Op: OpGT, Value: 13}
		}
		b.Run(typ, func(b *testing.B) {
			d := mustSpec(b, c).New()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d.Observe(t0.Add(time.Duration(i)*time.Second), vs[i&4095])
				i++
			}
			b.ReportMetric(float64(d.(Sizer).Size()), "state-bytes")
		})
	}
	// The robust window's worst case: every sample is kept (baseline/samples
	// no longer than the step), so each Observe updates the window.
	b.Run("robust_zscore_every_sample", func(b *testing.B) {
		d := mustSpec(b, Config{Type: "robust_zscore", Baseline: 64 * time.Second}).New()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.Observe(t0.Add(time.Duration(i)*time.Second), vs[i&4095])
			i++
		}
	})
}
