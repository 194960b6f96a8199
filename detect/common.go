package detect

import (
	"math"
	"time"
)

// judge holds what every statistical detector shares: the sampling
// interval, warm-up, direction, min_delta, hysteresis and the calibrated
// score. 232 bytes.
type judge struct {
	thr, hyst, minDelta float64
	warmup              int64 // ns
	start, last         int64 // unix ns of the first and last finite sample
	step                int64 // learnt sampling interval, ns (0: not yet known)
	ignored             uint64
	n                   uint32
	minBase, minWarm    uint32 // floors in samples of baselines and warm-up
	dir                 int8   // +1 up, -1 down, 0 both
	started, firing     bool
	cal                 calib
}

func newJudge(c Config) judge {
	j := judge{thr: c.Threshold, hyst: c.Hysteresis, minDelta: c.MinDelta, warmup: int64(c.Warmup),
		minBase: uint32(c.BaselineSamples), minWarm: uint32(c.WarmupSamples)}
	if j.minBase == 0 {
		j.minBase = MinBaselineSamples
	}
	if j.minWarm == 0 {
		j.minWarm = MinWarmupSamples
	}
	switch c.Direction {
	case Up:
		j.dir = 1
	case Down:
		j.dir = -1
	}
	return j
}

// admit records a sample at t and returns the time since the previous
// finite sample in ns (0 for the first, and when time went backwards), and
// false when v is not finite (the sample is then ignored and counted).
func (j *judge) admit(t time.Time, v float64) (dt int64, ok bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		j.ignored++
		return 0, false
	}
	ns := t.UnixNano()
	if !j.started {
		j.started, j.start, j.last = true, ns, ns
	} else if ns > j.last {
		dt, j.last = ns-j.last, ns
		j.learnStep(dt)
	}
	if j.n < math.MaxUint32 {
		j.n++
	}
	return dt, true
}

// learnStep folds the time between two samples into the learnt sampling
// interval: an EW mean of the gaps, each capped at 4 intervals so that an
// outage barely moves it while a lasting change of interval is learnt
// within a few dozen samples.
func (j *judge) learnStep(dt int64) {
	if j.step == 0 {
		j.step = dt
		return
	}
	j.step += (min(dt, 4*j.step) - j.step) / 16
}

// Step is the learnt sampling interval (0 before two samples).
func (j *judge) Step() time.Duration { return time.Duration(j.step) }

// tau is a baseline's time constant with its floor in samples: never
// shorter than minBase sampling intervals.
func (j *judge) tau(tau int64) int64 {
	return max(tau, int64(j.minBase)*j.step)
}

// skip is the verdict on an ignored value: the firing state unchanged.
func (j *judge) skip() Result { return Result{Firing: j.firing} }

// warm reports whether the detector may fire: warmup has passed since the
// first sample and at least max(minN, the warm-up floor) samples were seen
// (counting the current).
func (j *judge) warm(minN uint32) bool {
	return j.n >= max(minN, j.minWarm) && j.last-j.start >= j.warmup
}

// directed is the signed deviation z taken in the detector's direction.
func (j *judge) directed(z float64) float64 {
	switch j.dir {
	case 1:
		return z
	case -1:
		return -z
	}
	return math.Abs(z)
}

// decide turns a deviation into a verdict. z is the signed deviation in
// units of the detector's scale, delta the signed deviation in the value's
// unit (for min_delta), base the expected value, and hi and lo the values
// at which the detector fires above and below the baseline.
func (j *judge) decide(warm bool, z, delta, base, hi, lo float64) Result {
	r := Result{Baseline: base, Threshold: hi}
	if j.dir < 0 || (j.dir == 0 && z < 0) {
		r.Threshold = lo
	}
	if !warm {
		j.firing = false
		return r
	}
	zd := j.directed(z)
	if math.Abs(delta) < j.minDelta || math.IsNaN(zd) {
		zd = 0
	}
	// Deviations are calibrated in units where the threshold is
	// calibAtThreshold, so that the Gaussian floor of the tail (see calib)
	// means the same for every detector's scale.
	cd := max(zd, 0) * calibAtThreshold / j.thr
	r.Score = 1 - j.cal.tail(cd)
	if j.firing {
		j.firing = zd >= j.thr*j.hyst
	} else {
		j.firing = zd >= j.thr
	}
	j.cal.add(cd, j.firing)
	r.Firing = j.firing
	return r
}

// ew is an exponentially weighted mean and variance. 24 bytes.
type ew struct {
	mean, vari float64
	n          uint64
}

// maxAlpha caps the weight of one sample, so that the first sample after
// a long gap does not replace the whole baseline (and collapse its
// variance).
const maxAlpha = 1.0 / MinSamples

// alpha is the EW weight of a sample dt ns after the previous one, for
// time constant tau: 1-exp(-dt/tau), at most maxAlpha, but at least 1/n so
// that a young baseline is the plain mean of what it saw.
func alpha(dt, tau int64, n uint64) float64 {
	a := maxAlpha
	if tau > 0 {
		a = min(a, -math.Expm1(-float64(dt)/float64(tau)))
	}
	if n > 0 {
		a = max(a, 1/float64(n+1))
	}
	return a
}

// add folds x into the statistics with weight a (West's EW update).
func (e *ew) add(x, a float64) {
	if e.n == 0 {
		e.mean, e.vari, e.n = x, 0, 1
		return
	}
	e.n++
	d := x - e.mean
	inc := a * d
	e.mean += inc
	e.vari = (1 - a) * (e.vari + d*inc)
}

// scale is the standard deviation, floored so that it is never 0.
func (e *ew) scale() float64 {
	return floorScale(math.Sqrt(e.vari), e.mean)
}

// floorScale keeps a scale positive: at least 1e-9 of the level (or 1e-12).
func floorScale(s, level float64) float64 {
	return max(s, 1e-9*math.Abs(level), 1e-12)
}

// clampTo limits x to base ± c·s: the robust update of a baseline.
func clampTo(x, base, c, s float64) float64 {
	return min(max(x, base-c*s), base+c*s)
}
