package detect

import (
	"math"
	"time"
	"unsafe"
)

// EWMA is an EWMA control chart: it smooths the values with weight lambda,
// s = λ·v + (1-λ)·s, and fires when s leaves the control limits
// μ ± L·σ·sqrt(λ/(2-λ)), where μ and σ are the EW mean and standard
// deviation of the values (time constant baseline) and L is threshold.
// Smoothing makes it slower than zscore on a single spike and more
// sensitive to small lasting shifts. Its state is a fixed 112 bytes.
type EWMA struct {
	j      judge
	tau    int64
	stats  ew
	lambda float64
	s      float64
}

func newEWMA(c Config) *EWMA { return &EWMA{j: newJudge(c), tau: int64(c.Baseline), lambda: c.Lambda} }

// Observe implements Detector. Baseline is μ and Threshold the control
// limit, both in the value's unit; the limit applies to the smoothed value.
func (d *EWMA) Observe(t time.Time, v float64) Result {
	dt, ok := d.j.admit(t, v)
	if !ok {
		return d.j.skip()
	}
	if d.stats.n == 0 {
		d.stats.add(v, 1)
		d.s = v
		return d.j.decide(false, 0, 0, v, v, v)
	}
	d.s = d.lambda*v + (1-d.lambda)*d.s
	m, sd := d.stats.mean, d.stats.scale()
	cs := sd * math.Sqrt(d.lambda/(2-d.lambda))
	warm := d.j.warm(MinSamples)
	r := d.j.decide(warm, (d.s-m)/cs, d.s-m, m, m+d.j.thr*cs, m-d.j.thr*cs)
	x := v
	if warm {
		x = clampTo(v, m, d.j.thr, sd)
	}
	d.stats.add(x, alpha(dt, d.j.tau(d.tau), d.stats.n))
	return r
}

// Size implements Sizer.
func (d *EWMA) Size() int { return int(unsafe.Sizeof(*d)) }

// Ignored implements Ignorer.
func (d *EWMA) Ignored() uint64 { return d.j.ignored }
