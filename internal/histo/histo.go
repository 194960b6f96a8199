// Package histo defines the one histogram bucket layout that every mciv
// component shares: the eBPF programs compute it in the kernel with integer
// arithmetic, the collector ships it in wire.Histogram, and the analyzer
// reads quantiles from it.
//
// The layout is log-linear over non-negative integers in units of 1e-9 of
// the signal's base unit (nanoseconds for *_seconds signals): values below
// 64 have a bucket each; above, every power of two is split into 64 equal
// buckets. A bucket's width is at most 1/64 of its lower bound, so a
// quantile read at the bucket's midpoint is within 1/128 (0.8 %) of the
// true value.
package histo

import (
	"math"
	"math/bits"
	"sort"

	"github.com/mciv/mciv/internal/wire"
)

// SubBits is log2 of the number of buckets per power of two.
const SubBits = 6

const sub = 1 << SubBits

// Unit is the value of one integer step in base units (1 ns for seconds).
const Unit = 1e-9

// MaxIndex is the largest bucket index (for values near 2^64).
const MaxIndex = (64-SubBits)*sub + sub - 1

// Index returns the bucket of the integer value v.
func Index(v uint64) int32 {
	if v < sub {
		return int32(v)
	}
	m := 63 - bits.LeadingZeros64(v) // v in [2^m, 2^(m+1)), m >= SubBits
	shift := m - SubBits
	mantissa := int32(v>>shift) - sub // in [0, sub)
	return int32(m-SubBits+1)*sub + mantissa
}

// Bounds returns the integer range [lo, hi) that bucket i covers.
func Bounds(i int32) (lo, hi float64) {
	if i < sub {
		return float64(i), float64(i + 1)
	}
	m := int(i/sub) + SubBits - 1
	mantissa := float64(i%sub + sub)
	width := math.Ldexp(1, m-SubBits)
	return mantissa * width, (mantissa + 1) * width
}

// Value returns the representative value of bucket i in base units: the
// midpoint of its range.
func Value(i int32) float64 {
	lo, hi := Bounds(i)
	if i < sub {
		return lo * Unit
	}
	return (lo + hi) / 2 * Unit
}

// IndexOf returns the bucket of a value in base units (e.g. seconds).
func IndexOf(v float64) int32 {
	if !(v > 0) {
		return 0
	}
	n := v / Unit
	if n >= math.MaxUint64 {
		return MaxIndex
	}
	return Index(uint64(math.Round(n)))
}

// Quantile returns the q-quantile (0 <= q <= 1) of h in base units, or NaN
// for an empty histogram.
func Quantile(h *wire.Histogram, q float64) float64 {
	if h == nil || len(h.Buckets) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	var total uint64
	for _, b := range h.Buckets {
		total += b.Count
	}
	if total == 0 {
		return math.NaN()
	}
	q = math.Max(0, math.Min(1, q))
	// The rank of the quantile, 1-based: the smallest observation at or
	// above which a fraction q of all observations lie.
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for _, b := range h.Buckets {
		seen += b.Count
		if seen >= rank {
			return Value(b.Index)
		}
	}
	return Value(h.Buckets[len(h.Buckets)-1].Index)
}

// Recorder accumulates observations into the shared layout in Go, for
// signals aggregated in the collector rather than in the kernel. The zero
// value is ready to use; it is not safe for concurrent use.
type Recorder struct {
	counts map[int32]uint64
	count  uint64
	sum    float64
}

// Observe adds one value in base units.
func (r *Recorder) Observe(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return
	}
	r.ObserveIndex(IndexOf(v), 1, v)
}

// ObserveIndex adds n observations already bucketed (from a kernel map)
// whose values add up to sum base units.
func (r *Recorder) ObserveIndex(i int32, n uint64, sum float64) {
	if n == 0 {
		return
	}
	if r.counts == nil {
		r.counts = make(map[int32]uint64)
	}
	r.counts[i] += n
	r.count += n
	r.sum += sum
}

// Count is the number of observations since the last Snapshot.
func (r *Recorder) Count() uint64 { return r.count }

// Snapshot returns the observations so far as a wire.Histogram with sorted
// buckets, and resets the recorder.
func (r *Recorder) Snapshot() *wire.Histogram {
	h := &wire.Histogram{Count: r.count, Sum: r.sum, Buckets: make([]wire.Bucket, 0, len(r.counts))}
	for i, n := range r.counts {
		h.Buckets = append(h.Buckets, wire.Bucket{Index: i, Count: n})
	}
	sort.Slice(h.Buckets, func(a, b int) bool { return h.Buckets[a].Index < h.Buckets[b].Index })
	clear(r.counts)
	r.count, r.sum = 0, 0
	return h
}

// Merge adds the buckets of b into a (both sorted by index) and returns a.
func Merge(a, b *wire.Histogram) *wire.Histogram {
	if b == nil {
		return a
	}
	if a == nil {
		a = &wire.Histogram{}
	}
	out := make([]wire.Bucket, 0, len(a.Buckets)+len(b.Buckets))
	i, j := 0, 0
	for i < len(a.Buckets) || j < len(b.Buckets) {
		switch {
		case j >= len(b.Buckets) || (i < len(a.Buckets) && a.Buckets[i].Index < b.Buckets[j].Index):
			out = append(out, a.Buckets[i])
			i++
		case i >= len(a.Buckets) || b.Buckets[j].Index < a.Buckets[i].Index:
			out = append(out, b.Buckets[j])
			j++
		default:
			out = append(out, wire.Bucket{Index: a.Buckets[i].Index, Count: a.Buckets[i].Count + b.Buckets[j].Count})
			i++
			j++
		}
	}
	a.Buckets = out
	a.Count += b.Count
	a.Sum += b.Sum
	return a
}
