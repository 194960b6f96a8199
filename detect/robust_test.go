package detect

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// bruteMedianMAD is the textbook median and MAD.
func bruteMedianMAD(xs []float32) (float64, float64) {
	med := func(v []float64) float64 {
		slices.Sort(v)
		n := len(v)
		if n%2 == 1 {
			return v[n/2]
		}
		return (v[n/2-1] + v[n/2]) / 2
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = float64(x)
	}
	m := med(slices.Clone(v))
	for i := range v {
		v[i] = math.Abs(v[i] - m)
	}
	return m, med(v)
}

func TestMedianMAD(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 1; n <= 40; n++ {
		for range 20 {
			xs := make([]float32, n)
			for i := range xs {
				xs[i] = float32(math.Round(rng.NormFloat64()*3) + rng.Float64())
			}
			slices.Sort(xs)
			med, scale := medianMAD(xs)
			wm, wmad := bruteMedianMAD(xs)
			if med != wm {
				t.Fatalf("%v: median %v, want %v", xs, med, wm)
			}
			if wmad > 0 && math.Abs(scale-1.4826*wmad) > 1e-9 {
				t.Fatalf("%v: scale %v, want 1.4826*%v", xs, scale, wmad)
			}
		}
	}
	// A constant window falls back to the mean absolute deviation, then to
	// a tiny positive floor.
	if _, s := medianMAD([]float32{1, 1, 1, 1, 5}); math.Abs(s-1.2533*4/5) > 1e-9 {
		t.Fatalf("fallback scale %v", s)
	}
	if _, s := medianMAD([]float32{2, 2, 2}); s <= 0 {
		t.Fatalf("constant window scale %v", s)
	}
}

func TestRobustZScoreWindow(t *testing.T) {
	c := Config{Type: "robust_zscore", Baseline: 640 * time.Second, Samples: 64}
	d := mustSpec(t, c).New().(*RobustZScore)
	vs := noise(37, 5000, 10, 1)
	feed(d, vs, 5*time.Second) // keeps one value in two (spacing 10 s)
	if len(d.sorted) != 64 || !slices.IsSorted(d.sorted) {
		t.Fatalf("window %d values, sorted %v", len(d.sorted), slices.IsSorted(d.sorted))
	}
	// The window holds exactly the kept values, oldest first from head.
	var want []float32
	for i := len(vs) - 128; i < len(vs); i += 2 {
		want = append(want, float32(vs[i]))
	}
	got := append(slices.Clone(d.ring[d.head:]), d.ring[:d.head]...)
	if !slices.Equal(got, want) {
		t.Fatalf("ring %v\nwant %v", got[:4], want[:4])
	}
	// Resistant to outliers: 20 % wild values leave the median near 10.
	for i := range 200 {
		v := 10.0
		if i%5 == 0 {
			v = 1e6
		}
		d.Observe(t0.Add(time.Duration(5000+i)*5*time.Second), v)
	}
	if math.Abs(d.med-10) > 0.5 {
		t.Fatalf("median %v after outliers", d.med)
	}
}
