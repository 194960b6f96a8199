package detect

import (
	"math/rand/v2"
	"testing"
	"time"
)

// t0 is the start of the synthetic series.
var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// noise returns n values level + N(0,sd) from a fixed seed.
func noise(seed uint64, n int, level, sd float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]float64, n)
	for i := range out {
		out[i] = level + sd*rng.NormFloat64()
	}
	return out
}

// mustSpec builds a spec or fails the test.
func mustSpec(tb testing.TB, c Config) Spec {
	tb.Helper()
	s, err := NewSpec(c)
	if err != nil {
		tb.Fatalf("NewSpec(%+v): %v", c, err)
	}
	return s
}

// feed runs values through d, one every step from t0.
func feed(d Detector, vs []float64, step time.Duration) []Result {
	out := make([]Result, len(vs))
	for i, v := range vs {
		out[i] = d.Observe(t0.Add(time.Duration(i)*step), v)
	}
	return out
}

// firstFiring is the index of the first firing result at or after from, or -1.
func firstFiring(rs []Result, from int) int {
	for i := from; i < len(rs); i++ {
		if rs[i].Firing {
			return i
		}
	}
	return -1
}

// statTypes are the value-judging statistical detector types.
func statTypes() []string {
	return []string{"zscore", "robust_zscore", "ewma", "cusum", "seasonal", "rate_of_change", "auto"}
}
