package detect

import (
	"math"
	"testing"
	"time"
)

func TestRateOfChange(t *testing.T) {
	c := Config{Type: "rate_of_change", Window: 10 * time.Minute, Threshold: 0.5, Direction: Up}
	d := mustSpec(t, c).New()
	vs := make([]float64, 120)
	for i := range vs {
		vs[i] = 100
		if i >= 60 {
			vs[i] = 100 + 10*float64(i-59) // +10 per minute from minute 60
		}
	}
	rs := feed(d, vs, time.Minute)
	for i := range 10 {
		if rs[i].Firing || rs[i].Score != 0 {
			t.Fatalf("minute %d, before a full window: %+v", i, rs[i])
		}
	}
	first := firstFiring(rs, 0)
	// +50 % over 10 minutes is reached at minute 64 (150 vs 100).
	if first != 64 || rs[first].Baseline != 100 || math.Abs(rs[first].Threshold-150) > 1e-9 {
		t.Fatalf("first firing %d: %+v", first, rs[max(first, 0)])
	}
}

func TestRateOfChangeZeroReference(t *testing.T) {
	c := Config{Type: "rate_of_change", Window: time.Minute, Threshold: 1, MinDelta: 5, WarmupSamples: 1}
	rs := feed(mustSpec(t, c).New(), []float64{0, 0, 0, 1, 0, 0, 10}, 30*time.Second)
	if rs[3].Firing || !rs[6].Firing {
		t.Fatalf("from 0: 1 fired %v, 10 fired %v", rs[3].Firing, rs[6].Firing)
	}
}
