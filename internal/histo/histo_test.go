package histo

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/mciv/mciv/internal/wire"
)

func TestIndexBoundsAgree(t *testing.T) {
	prev := int32(-1)
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 123456789, 1<<40 + 12345, math.MaxUint64} {
		i := Index(v)
		lo, hi := Bounds(i)
		if float64(v) < lo || (float64(v) >= hi && v != math.MaxUint64) {
			t.Errorf("v=%d: bucket %d covers [%g,%g)", v, i, lo, hi)
		}
		if i < prev {
			t.Errorf("index not monotonic at %d", v)
		}
		prev = i
	}
	if Index(math.MaxUint64) != MaxIndex {
		t.Errorf("Index(max) = %d, want %d", Index(math.MaxUint64), MaxIndex)
	}
	// Consecutive buckets tile the line with no gaps.
	for i := int32(0); i < 2000; i++ {
		_, hi := Bounds(i)
		lo2, _ := Bounds(i + 1)
		if hi != lo2 {
			t.Fatalf("gap between bucket %d and %d: %g vs %g", i, i+1, hi, lo2)
		}
	}
}

func TestQuantileWithinTwoPercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r Recorder
	vals := make([]float64, 20000)
	for i := range vals {
		// Log-normal latencies around 5 ms.
		vals[i] = math.Exp(rng.NormFloat64()*1.2) * 0.005
		r.Observe(vals[i])
	}
	sort.Float64s(vals)
	h := r.Snapshot()
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := Quantile(h, q)
		if rel := math.Abs(got-want) / want; rel > 0.02 {
			t.Errorf("q%.3f = %g, exact %g: relative error %.4f > 2%%", q, got, want, rel)
		}
	}
	if r.Count() != 0 {
		t.Error("Snapshot did not reset")
	}
	if h.Count != uint64(len(vals)) {
		t.Errorf("count %d", h.Count)
	}
}

func TestQuantileEdges(t *testing.T) {
	if !math.IsNaN(Quantile(nil, 0.5)) || !math.IsNaN(Quantile(&wire.Histogram{}, 0.5)) {
		t.Error("empty histogram should give NaN")
	}
	var r Recorder
	r.Observe(0.05)
	r.Observe(math.NaN())
	r.Observe(-1)
	h := r.Snapshot()
	if h.Count != 1 {
		t.Fatalf("NaN or negative observations were counted: %d", h.Count)
	}
	if got := Quantile(h, 0.5); math.Abs(got-0.05)/0.05 > 0.01 {
		t.Errorf("single value: %g", got)
	}
}

func bk(i int32, n uint64) wire.Bucket { return wire.Bucket{Index: i, Count: n} }

func TestMerge(t *testing.T) {
	a := &wire.Histogram{Count: 3, Sum: 3, Buckets: []wire.Bucket{bk(1, 1), bk(5, 2)}}
	b := &wire.Histogram{Count: 3, Sum: 4, Buckets: []wire.Bucket{bk(0, 1), bk(5, 1), bk(9, 1)}}
	m := Merge(a, b)
	want := []wire.Bucket{bk(0, 1), bk(1, 1), bk(5, 3), bk(9, 1)}
	if len(m.Buckets) != len(want) || m.Count != 6 || m.Sum != 7 {
		t.Fatalf("merge: %+v", m)
	}
	for i := range want {
		if m.Buckets[i] != want[i] {
			t.Fatalf("merge bucket %d: %+v", i, m.Buckets[i])
		}
	}
}

func BenchmarkIndex(b *testing.B) {
	v := uint64(123456789)
	for i := 0; i < b.N; i++ {
		_ = Index(v + uint64(i))
	}
}
