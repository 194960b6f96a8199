package detect

import (
	"math"
	"testing"
	"time"
)

func TestJudgeHysteresis(t *testing.T) {
	j := newJudge(Config{Threshold: 4, Hysteresis: 0.75, Direction: Both})
	j.admit(t0, 1)
	for i, tc := range []struct {
		z      float64
		firing bool
	}{
		{3.9, false}, {4.0, true}, {3.1, true}, {4.2, true}, {3.0, true}, {2.99, false}, {3.5, false}, {-4.5, true}, {-3.2, true}, {0, false},
	} {
		r := j.decide(true, tc.z, tc.z, 0, 4, -4)
		if r.Firing != tc.firing {
			t.Fatalf("step %d z=%v: firing %v, want %v", i, tc.z, r.Firing, tc.firing)
		}
		// The score is 1-p against the history of deviations: a first
		// 3.9-sigma deviation is rare; later ones, in this history of
		// large deviations, less so.
		if (tc.z == 0) != (r.Score == 0) || (i == 0 && r.Score < 0.999) {
			t.Fatalf("step %d: score %v for z=%v", i, r.Score, tc.z)
		}
		if (tc.z < 0) != (r.Threshold < 0) {
			t.Fatalf("step %d: threshold %v on the wrong side", i, r.Threshold)
		}
	}
}

func TestJudgeWarmup(t *testing.T) {
	j := newJudge(Config{Threshold: 1, Hysteresis: 1, Warmup: time.Minute, Direction: Up})
	for i := range 20 {
		j.admit(t0.Add(time.Duration(i)*10*time.Second), 1)
		want := i >= MinWarmupSamples-1 && i >= 6 // the floor of 16 samples and 60 s
		if got := j.warm(MinSamples); got != want {
			t.Fatalf("sample %d: warm %v, want %v", i, got, want)
		}
	}
}

func TestAlpha(t *testing.T) {
	hour := int64(time.Hour)
	for _, tc := range []struct {
		dt, tau int64
		n       uint64
		want    float64
	}{
		{int64(time.Minute), hour, 1000, -math.Expm1(-1.0 / 60)},
		{int64(time.Minute), hour, 3, 0.25},           // young: 1/(n+1)
		{int64(10 * time.Hour), hour, 1000, maxAlpha}, // after a gap: capped
		{0, hour, 1000, 1.0 / 1001},                   // same time: the 1/n floor
	} {
		if got := alpha(tc.dt, tc.tau, tc.n); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("alpha(%v, %v, %v) = %v, want %v", tc.dt, tc.tau, tc.n, got, tc.want)
		}
	}
}

func TestEW(t *testing.T) {
	var e ew
	for _, x := range []float64{1, 2, 3, 4} {
		e.add(x, alpha(0, 0, e.n))
	}
	// With weights 1/n the EW statistics are the plain mean and the
	// population variance.
	if math.Abs(e.mean-2.5) > 1e-12 || math.Abs(e.vari-1.25) > 1e-12 {
		t.Fatalf("mean %v var %v", e.mean, e.vari)
	}
}

func TestBaselineFloorInSamples(t *testing.T) {
	// baseline 30m at 5-minute steps would be 6 samples; the floor keeps
	// it at MinBaselineSamples intervals.
	d := mustSpec(t, Config{Type: "zscore", Baseline: 30 * time.Minute}).New().(*ZScore)
	for i := range 10 {
		d.Observe(t0.Add(time.Duration(i)*5*time.Minute), 1)
	}
	if got, want := time.Duration(d.j.tau(d.tau)), MinBaselineSamples*5*time.Minute; got != want {
		t.Fatalf("baseline %v, want %v", got, want)
	}
	// Written in samples.
	d = mustSpec(t, Config{Type: "zscore", Baseline: time.Minute, BaselineSamples: 500}).New().(*ZScore)
	for i := range 10 {
		d.Observe(t0.Add(time.Duration(i)*time.Second), 1)
	}
	if got := time.Duration(d.j.tau(d.tau)); got != 500*time.Second {
		t.Fatalf("baseline_samples 500 at 1s: %v", got)
	}
}
