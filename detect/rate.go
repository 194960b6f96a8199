package detect

import (
	"math"
	"time"
	"unsafe"
)

// rocPoints is how many past values a RateOfChange keeps.
const rocPoints = 17

// rocMinSamples is the floor of the window in sampling intervals.
const rocMinSamples = 4

// RateOfChange fires when a value differs from the value about window
// earlier by more than threshold times the earlier value's magnitude:
// threshold 0.5 fires at +50 % (up) or -50 % (down). It keeps 17 past
// values taken at least window/16 apart and compares with the newest of
// them that is at least window old (and at least 4 sampling intervals:
// the interval is learnt from the series). Its state is a fixed 536 bytes.
type RateOfChange struct {
	j       judge
	window  int64
	spacing int64
	next    int64
	head    int32 // next slot to write
	n       int32
	ts      [rocPoints]int64
	vs      [rocPoints]float64
}

func newRateOfChange(c Config) *RateOfChange {
	return &RateOfChange{j: newJudge(c), window: int64(c.Window), spacing: int64(c.Window) / (rocPoints - 1)}
}

// Observe implements Detector. Baseline is the earlier value compared with.
func (d *RateOfChange) Observe(t time.Time, v float64) Result {
	if _, ok := d.j.admit(t, v); !ok {
		return d.j.skip()
	}
	ns := t.UnixNano()
	window := max(d.window, rocMinSamples*d.j.step) // never fewer than 4 intervals
	var (
		ref   float64
		found bool
		best  int64 = math.MinInt64
	)
	for i := int32(0); i < d.n; i++ {
		if at := d.ts[i]; ns-at >= window && at > best {
			best, ref, found = at, d.vs[i], true
		}
	}
	var r Result
	if !found {
		r = d.j.decide(false, 0, 0, v, v, v)
	} else {
		mag := floorScale(math.Abs(ref), 0)
		r = d.j.decide(d.j.warm(1), (v-ref)/mag, v-ref, ref, ref+d.j.thr*mag, ref-d.j.thr*mag)
	}
	if d.n == 0 || ns >= d.next {
		d.next = ns + d.spacing
		d.ts[d.head], d.vs[d.head] = ns, v
		d.head = (d.head + 1) % rocPoints
		d.n = min(d.n+1, rocPoints)
	}
	return r
}

// Size implements Sizer.
func (d *RateOfChange) Size() int { return int(unsafe.Sizeof(*d)) }

// Ignored implements Ignorer.
func (d *RateOfChange) Ignored() uint64 { return d.j.ignored }
