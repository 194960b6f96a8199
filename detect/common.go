package detect

import (
	"math"
	"time"
)

// judge holds what every statistical detector shares: warm-up, direction,
// min_delta, hysteresis and the score mapping. 64 bytes.
type judge struct {
	thr, hyst, minDelta float64
	warmup              int64 // ns
	start, last         int64 // unix ns of the first and last finite sample
	ignored             uint64
	n                   uint32
	dir                 int8 // +1 up, -1 down, 0 both
	started, firing     bool
}

func newJudge(c Config) judge {
	j := judge{thr: c.Threshold, hyst: c.Hysteresis, minDelta: c.MinDelta, warmup: int64(c.Warmup)}
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
	}
	if j.n < math.MaxUint32 {
		j.n++
	}
	return dt, true
}

// skip is the verdict on an ignored value: the firing state unchanged.
func (j *judge) skip() Result { return Result{Firing: j.firing} }

// warm reports whether the detector may fire: warmup has passed since the
// first sample and at least minN samples were seen (counting the current).
func (j *judge) warm(minN uint32) bool {
	return j.n >= minN && j.last-j.start >= j.warmup
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
	if zd > 0 {
		r.Score = score(zd, j.thr)
	}
	if j.firing {
		j.firing = zd >= j.thr*j.hyst
	} else {
		j.firing = zd >= j.thr
	}
	r.Firing = j.firing
	return r
}

// score maps a deviation z > 0 to z/(z+thr): 0.5 at the threshold.
func score(z, thr float64) float64 {
	if math.IsInf(z, 1) {
		return 1
	}
	return z / (z + thr)
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
