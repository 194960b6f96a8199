package detect

import (
	"time"
	"unsafe"
)

// CUSUM is a tabular two-sided CUSUM change-point detector. Each value is
// standardised against the EW mean and standard deviation of the values
// before it (time constant baseline), z = (v-μ)/σ, and accumulated:
//
//	S⁺ = max(0, S⁺ + z - k)    S⁻ = max(0, S⁻ - z - k)
//
// It fires when the sum of the configured direction exceeds h (threshold),
// and clears when it falls below h·hysteresis; the sums are then reset to
// 0 (reset after signal). The sums are capped at 2h so that a long shift
// does not keep the detector firing long after it ends. The baseline
// learns from values clamped to μ ± 4σ. Its state is a fixed 120 bytes.
type CUSUM struct {
	j        judge
	tau      int64
	stats    ew
	k        float64
	pos, neg float64
}

// cusumClamp is how many standard deviations from the mean a value may
// move the CUSUM baseline.
const cusumClamp = 4

func newCUSUM(c Config) *CUSUM { return &CUSUM{j: newJudge(c), tau: int64(c.Baseline), k: c.K} }

// Observe implements Detector. Baseline is μ; Threshold is the value that
// would, on its own, push a zero sum past h (μ ± (h+k)·σ).
func (d *CUSUM) Observe(t time.Time, v float64) Result {
	dt, ok := d.j.admit(t, v)
	if !ok {
		return d.j.skip()
	}
	if d.stats.n == 0 {
		d.stats.add(v, 1)
		return d.j.decide(false, 0, 0, v, v, v)
	}
	m, s := d.stats.mean, d.stats.scale()
	h := d.j.thr
	z := (v - m) / s
	warm := d.j.warm(MinSamples)
	var pos, neg float64 // this step's sums before the cap
	if warm {
		pos, neg = max(0, d.pos+z-d.k), max(0, d.neg-z-d.k)
		d.pos, d.neg = min(pos, 2*h), min(neg, 2*h)
	}
	// The CUSUM statistic of the direction, signed like z for decide. The
	// uncapped sum is judged, so that the score keeps growing with the
	// evidence of this step even when the state is at its cap.
	var stat float64
	switch d.j.dir {
	case 1:
		stat = pos
	case -1:
		stat = -neg
	default:
		stat = pos
		if neg > pos {
			stat = -neg
		}
	}
	was := d.j.firing
	r := d.j.decide(warm, stat, v-m, m, m+(h+d.k)*s, m-(h+d.k)*s)
	if was && !r.Firing {
		d.pos, d.neg = 0, 0
	}
	x := v
	if warm {
		x = clampTo(v, m, cusumClamp, s)
	}
	d.stats.add(x, alpha(dt, d.j.tau(d.tau), d.stats.n))
	return r
}

// Size implements Sizer.
func (d *CUSUM) Size() int { return int(unsafe.Sizeof(*d)) }

// Ignored implements Ignorer.
func (d *CUSUM) Ignored() uint64 { return d.j.ignored }
