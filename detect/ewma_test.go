package detect

import (
	"testing"
	"time"
)

func TestEWMASmallShift(t *testing.T) {
	// A lasting shift of 1.5 sd: below a z-score's threshold of 4 on any
	// single value, but the smoothed statistic (sd 0.23) crosses L=4.
	vs := noise(53, 3000, 100, 1)
	for i := 2000; i < len(vs); i++ {
		vs[i] += 1.5
	}
	c := Config{Type: "ewma", Baseline: 24 * time.Hour, Threshold: 4, Lambda: 0.1}
	rs := feed(mustSpec(t, c).New(), vs, time.Minute)
	if f := firstFiring(rs, 0); f < 2000 || f > 2050 {
		t.Fatalf("ewma first fired at %d, want within 50 samples of 2000", f)
	}
}

func TestEWMASmoothsSpike(t *testing.T) {
	vs := noise(59, 2000, 100, 1)
	vs[1500] += 5 // 5 sd: a z-score at 4 fires, λ=0.1 smooths it to 0.5 sd
	c := Config{Type: "ewma", Baseline: 24 * time.Hour, Threshold: 3, Lambda: 0.1}
	rs := feed(mustSpec(t, c).New(), vs, time.Minute)
	if rs[1500].Firing {
		t.Fatalf("ewma fired on a single 5 sd value: %+v", rs[1500])
	}
}
