package detect

import (
	"math"
	"testing"
	"time"
)

func TestZScoreBaselineAndLimit(t *testing.T) {
	// Alternating 9, 11: mean 10, standard deviation 1.
	vs := make([]float64, 2000)
	for i := range vs {
		vs[i] = 9 + 2*float64(i%2)
	}
	d := mustSpec(t, Config{Type: "zscore", Baseline: time.Hour, Threshold: 4}).New()
	feed(d, vs, 10*time.Second)
	r := d.Observe(t0.Add(2000*10*time.Second), 60)
	if !r.Firing || math.Abs(r.Baseline-10) > 0.2 || math.Abs(r.Threshold-14) > 0.3 {
		t.Fatalf("60 against mean 10, sd 1: %+v", r)
	}
	// "6 times its usual value": value/baseline is what alerts can say.
	if ratio := 60 / r.Baseline; math.Abs(ratio-6) > 0.2 {
		t.Fatalf("ratio %v", ratio)
	}
	// A 50-sigma deviation never seen before: a tail probability below 1e-12.
	if r.Score < 1-1e-12 {
		t.Fatalf("score %v, want 1-p with p < 1e-12", r.Score)
	}
}

func TestZScoreSpikeBarelyMovesBaseline(t *testing.T) {
	vs := noise(47, 1000, 10, 1)
	d := mustSpec(t, Config{Type: "zscore", Baseline: time.Hour, Threshold: 4}).New().(*ZScore)
	feed(d, vs, 10*time.Second)
	before := d.stats.mean
	d.Observe(t0.Add(1000*10*time.Second), 1e9)
	if moved := d.stats.mean - before; moved > 1 {
		t.Fatalf("a spike moved the baseline by %v", moved)
	}
}
