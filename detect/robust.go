package detect

import (
	"math"
	"slices"
	"time"
	"unsafe"
)

// RobustZScore fires when a value is more than threshold robust standard
// deviations, 1.4826·MAD, from the median of a window of past values.
//
// The window keeps at most `samples` values (float32), taken at least
// baseline/samples apart, so it spans about baseline (longer when the
// series is sampled more sparsely than that): a subsample keeps the
// distribution, hence the median and MAD, of the whole window. Values
// live in a ring (arrival order) and a sorted copy; a kept value replaces
// the oldest by binary search and a memmove of at most `samples` floats,
// after which the median and MAD are recomputed in O(samples). Values
// between two kept ones are judged in O(1). When the MAD is 0 (a mostly
// constant series) the scale falls back to 1.2533 times the mean absolute
// deviation from the median. It cannot fire before its window is half
// full (about baseline/2), whatever warmup says. State: 152 bytes +
// 8·samples (664 bytes with the default 64 samples).
type RobustZScore struct {
	j        judge
	spacing  int64 // ns between kept values
	next     int64 // unix ns from which the next value is kept
	ring     []float32
	sorted   []float32
	head     int32 // index of the oldest value once the ring is full
	med, mad float64
}

func newRobustZScore(c Config) *RobustZScore {
	return &RobustZScore{
		j:       newJudge(c),
		spacing: int64(c.Baseline) / int64(c.Samples),
		ring:    make([]float32, 0, c.Samples),
		sorted:  make([]float32, 0, c.Samples),
	}
}

// Observe implements Detector. Baseline is the window's median.
func (d *RobustZScore) Observe(t time.Time, v float64) Result {
	if _, ok := d.j.admit(t, v); !ok {
		return d.j.skip()
	}
	var r Result
	if len(d.sorted) == 0 {
		r = d.j.decide(false, 0, 0, v, v, v)
	} else {
		m, s := d.med, d.mad
		warm := d.j.warm(MinSamples) && len(d.sorted) >= max(MinSamples, cap(d.sorted)/2)
		r = d.j.decide(warm, (v-m)/s, v-m, m, m+d.j.thr*s, m-d.j.thr*s)
	}
	if ns := t.UnixNano(); len(d.sorted) == 0 || ns >= d.next {
		d.next = ns + d.spacing
		d.keep(float32(v))
	}
	return r
}

// keep adds x to the window, evicting the oldest value when it is full,
// and recomputes the median and scale.
func (d *RobustZScore) keep(x float32) {
	if len(d.ring) < cap(d.ring) {
		d.ring = append(d.ring, x)
	} else {
		old := d.ring[d.head]
		d.ring[d.head] = x
		d.head = (d.head + 1) % int32(len(d.ring))
		i, _ := slices.BinarySearch(d.sorted, old)
		d.sorted = slices.Delete(d.sorted, i, i+1)
	}
	i, _ := slices.BinarySearch(d.sorted, x)
	d.sorted = slices.Insert(d.sorted, i, x)
	d.med, d.mad = medianMAD(d.sorted)
}

// medianMAD returns the median of the sorted values and their robust
// scale: 1.4826·MAD, or 1.2533·mean absolute deviation when the MAD is 0,
// floored to stay positive. It merges the deviations below and above the
// median, which are each sorted, up to the middle one.
func medianMAD(s []float32) (med, scale float64) {
	n := len(s)
	if n%2 == 1 {
		med = float64(s[n/2])
	} else {
		med = (float64(s[n/2-1]) + float64(s[n/2])) / 2
	}
	// Deviations: left side walks down from the middle, right side up.
	l, r := n/2-1, n/2
	if n%2 == 1 {
		r++ // the middle value itself is taken below
	}
	var dev [2]float64
	// The middle element of an odd window has deviation 0.
	k := 0 // deviations taken so far, in increasing order
	want := n / 2
	take := func(x float64) {
		if k == want-1 || k == want {
			dev[k-(want-1)] = x
		}
		k++
	}
	if n%2 == 1 {
		take(0)
	}
	for k <= want && (l >= 0 || r < n) {
		switch {
		case l < 0:
			take(float64(s[r]) - med)
			r++
		case r >= n:
			take(med - float64(s[l]))
			l--
		case med-float64(s[l]) <= float64(s[r])-med:
			take(med - float64(s[l]))
			l--
		default:
			take(float64(s[r]) - med)
			r++
		}
	}
	var mad float64
	switch {
	case n == 1:
		mad = 0
	case n%2 == 1:
		mad = dev[1]
	default:
		mad = (dev[0] + dev[1]) / 2
	}
	scale = 1.4826 * mad
	if scale == 0 {
		var sum float64
		for _, x := range s {
			sum += math.Abs(float64(x) - med)
		}
		scale = 1.2533 * sum / float64(n)
	}
	return med, floorScale(scale, med)
}

// Size implements Sizer.
func (d *RobustZScore) Size() int {
	return int(unsafe.Sizeof(*d)) + 4*(cap(d.ring)+cap(d.sorted))
}

// Ignored implements Ignorer.
func (d *RobustZScore) Ignored() uint64 { return d.j.ignored }
