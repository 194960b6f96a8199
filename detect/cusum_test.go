package detect

import (
	"testing"
	"time"
)

func TestCUSUMSlowDrift(t *testing.T) {
	// A drift of 0.01 sd per sample: too slow for a z-score to see, the
	// kind of change CUSUM is for.
	vs := noise(41, 4000, 100, 1)
	for i := 2000; i < len(vs); i++ {
		vs[i] += 0.01 * float64(i-2000)
	}
	c := Config{Type: "cusum", Baseline: 24 * time.Hour, Threshold: 8, K: 0.5}
	rs := feed(mustSpec(t, c).New(), vs, time.Minute)
	first := firstFiring(rs, 0)
	if first < 2000 || first > 2600 {
		t.Fatalf("cusum first fired at %d, want within 600 samples of the drift's start at 2000", first)
	}
	z := Config{Type: "zscore", Baseline: time.Hour, Threshold: 4}
	if zf := firstFiring(feed(mustSpec(t, z).New(), vs, time.Minute), 0); zf >= 0 && zf < first {
		t.Fatalf("zscore (1h baseline) fired at %d, before cusum at %d", zf, first)
	}
}

func TestCUSUMResetAfterSignal(t *testing.T) {
	vs := noise(43, 3000, 100, 1)
	for i := 1500; i < 1520; i++ {
		vs[i] += 3 // a short shift
	}
	c := Config{Type: "cusum", Baseline: 24 * time.Hour, Threshold: 8, K: 0.5}
	d := mustSpec(t, c).New().(*CUSUM)
	rs := feed(d, vs, time.Minute)
	first := firstFiring(rs, 0)
	if first < 1500 || first > 1510 {
		t.Fatalf("first firing %d", first)
	}
	last := first
	for last+1 < len(rs) && rs[last+1].Firing {
		last++
	}
	if last > 1560 {
		t.Fatalf("still firing at %d, 40 samples after the shift ended", last)
	}
	if d.pos != 0 && rs[len(rs)-1].Firing == false && d.pos > 8 {
		t.Fatalf("sum %v not reset", d.pos)
	}
	if f := firstFiring(rs, last+1); f >= 0 {
		t.Fatalf("fired again at %d", f)
	}
}
