package detect

import (
	"math"
	"time"
	"unsafe"
)

// Kinds of anomaly the auto detector reports in Result.Kind.
const (
	KindSpike       = "spike"
	KindLevelShift  = "level shift"
	KindDrift       = "drift"
	KindVariance    = "variance change"
	KindSeasonality = "broken seasonality"
)

// Auto watches a series for every common kind of anomaly at once, with no
// options needed for a metric never seen, at any sampling interval: it
// learns the interval, keeps its horizons in samples (a duration given as
// baseline is a lower bound), and reports the strongest calibrated
// evidence among five statistics, each calibrated against its own history
// (see calib):
//
//   - spike: the value's deviation from a robust EW baseline, in robust
//     standard deviations;
//   - level shift: an EWMA chart of the values (clamped to ±3σ each, so a
//     single spike cannot move it) against the baseline;
//   - drift: a slow EW mean (clamped inputs) against a baseline eight
//     times slower, which a drift the baseline follows still leaves behind;
//   - variance change: the log ratio of the recent mean squared deviation
//     (clamped) to the baseline's variance, both ways (a flat line is a
//     variance change);
//   - broken seasonality: once a whole day has been seen, the value
//     against the mean and spread of its hour of the day.
//
// The score is 1-p, p the smallest of the five tail probabilities times
// the number of statistics judged (Bonferroni), and while firing also
// times the samples the firing has lasted. It fires when
// -log10(p) >= threshold (default 5: p <= 1e-5) and clears when
// -log10(p) < threshold·hysteresis. Direction applies to all but the
// variance statistic. Result.Kind names the statistic (a spike that
// fires on consecutive samples is a level shift). State: fixed,
// about 1.4 KiB.
type Auto struct {
	j      judge
	limZ   float64  // the Gaussian |z| of p = 10^-threshold
	tau    int64    // baseline time constant (ns), floored in samples
	mu, vr float64  // baseline mean and variance
	muL    float64  // the slower baseline of the drift statistic
	lvl    float64  // level EWMA (clamped inputs)
	mid    float64  // drift EW mean
	msd    float64  // recent mean squared deviation (clamped)
	nb     uint32   // samples in the baseline
	since  uint32   // samples the current firing has lasted
	cal    [4]calib // level, drift, variance, seasonality
	day    [autoSlots]struct{ m, v float32 }
	dayN   [autoSlots]uint16
}

const (
	autoSlots    = 24 // hours of the day
	autoLevelA   = 1.0 / 6
	autoDriftA   = 1.0 / 32
	autoVarA     = 1.0 / 16
	autoClamp    = 4 // σ a value may move the baseline by
	autoInClamp  = 3 // σ a value may move the level EWMA and the variance by
	autoDriftMul = 8 // the drift baseline is this much slower
)

func newAuto(c Config) *Auto {
	return &Auto{j: newJudge(c), tau: int64(c.Baseline), limZ: autoGaussZ(c.Threshold)}
}

// Observe implements Detector. Baseline is the robust EW mean and
// Threshold the value at which the spike statistic alone would fire with
// a Gaussian history (μ ± z·σ for p = 10^-threshold).
func (d *Auto) Observe(t time.Time, v float64) Result {
	dt, ok := d.j.admit(t, v)
	if !ok {
		return d.j.skip()
	}
	if d.nb == 0 {
		d.mu, d.muL, d.lvl, d.mid, d.vr, d.nb = v, v, v, v, 0, 1
		return Result{Baseline: v, Threshold: v}
	}
	sd := floorScale(math.Sqrt(d.vr), d.mu)
	z := (v - d.mu) / sd
	lim := d.mu + d.limZ*sd
	if d.j.dir < 0 || (d.j.dir == 0 && z < 0) {
		lim = d.mu - d.limZ*sd
	}
	r := Result{Baseline: d.mu, Threshold: lim}
	warm := d.j.warm(MinSamples)

	// The statistics, before this value updates them.
	zc := min(max(z, -autoInClamp), autoInClamp)
	lvl := d.lvl + autoLevelA*(d.mu+zc*sd-d.lvl)
	mid := d.mid + autoDriftA*(d.mu+zc*sd-d.mid)
	msd := d.msd + autoVarA*(zc*zc-d.msd)
	sLevel := (lvl - d.mu) / (sd * math.Sqrt(autoLevelA/(2-autoLevelA)))
	sDrift := (mid - d.muL) / (sd * math.Sqrt(autoDriftA/(2-autoDriftA)))
	sVar := math.Abs(math.Log(max(msd, 1e-6))) / math.Sqrt(2*autoVarA/(2-autoVarA))
	slot := d.slot(t)
	sSeason, seasonal := 0.0, d.j.last-d.j.start >= int64(24*time.Hour) && d.dayN[slot] >= MinSamples
	if seasonal {
		m, s := float64(d.day[slot].m), math.Sqrt(float64(d.day[slot].v))
		sSeason = (v - m) / floorScale(s, m)
	}

	// The statistics are calibrated from MinSamples samples on, and
	// judged once warm.
	d.j.firing = d.j.firing && warm
	if d.nb >= MinSamples {
		stats := [5]float64{d.j.directed(z), d.j.directed(sLevel), d.j.directed(sDrift), sVar, d.j.directed(sSeason)}
		kinds := [5]string{KindSpike, KindLevelShift, KindDrift, KindVariance, KindSeasonality}
		k := 4
		if seasonal {
			k = 5
		}
		if warm && math.Abs(v-d.mu) >= d.j.minDelta {
			p, kind := 1.0, ""
			for i := range k {
				if pi := d.calOf(i).tail(max(stats[i], 0)); pi < p {
					p, kind = pi, kinds[i]
				}
			}
			p = min(1, p*float64(k))
			nines := -math.Log10(max(p, pFloor))
			if d.j.firing {
				d.j.firing = nines >= d.j.thr*d.j.hyst
			} else {
				d.j.firing = nines >= d.j.thr
			}
			if kind == KindSpike && d.j.firing && d.since > 0 {
				kind = KindLevelShift // a spike that lasts
			}
			// The score discounts p by the length of the firing episode
			// (a Bonferroni correction over its samples): a lasting
			// anomaly ranks its onset first.
			r.Score = 1 - min(1, p*float64(1+d.since))
			if p < 1 {
				r.Kind = kind
			}
		} else {
			d.j.firing = false
		}
		if d.j.firing {
			d.since = min(d.since+1, 1<<20)
		} else {
			d.since = 0
		}
		r.Firing = d.j.firing
		for i := range k {
			d.calOf(i).add(max(stats[i], 0), d.j.firing)
		}
	}

	// Learn.
	x := v
	if warm {
		x = clampTo(v, d.mu, autoClamp, sd)
	}
	tau := d.j.tau(d.tau)
	a := alpha(dt, tau, uint64(d.nb))
	dx := x - d.mu
	d.mu += a * dx
	d.vr = (1 - a) * (d.vr + dx*a*dx)
	aL := alpha(dt, autoDriftMul*tau, uint64(d.nb))
	d.muL += aL * (x - d.muL)
	d.nb++
	d.lvl, d.mid, d.msd = lvl, mid, msd
	if d.nb <= MinSamples {
		d.lvl, d.mid, d.msd = d.mu, d.mu, 1
	}
	st := &d.day[slot]
	sa := 1 / float64(min(int(d.dayN[slot])+1, 32))
	xs := v
	if d.dayN[slot] >= MinSamples {
		m, s := float64(st.m), math.Sqrt(float64(st.v))
		xs = clampTo(v, m, autoClamp, floorScale(s, m))
	}
	ds := xs - float64(st.m)
	if d.dayN[slot] == 0 {
		st.m, st.v = float32(xs), 0
	} else {
		st.m += float32(sa * ds)
		st.v = float32((1 - sa) * (float64(st.v) + ds*sa*ds))
	}
	if d.dayN[slot] < math.MaxUint16 {
		d.dayN[slot]++
	}
	return r
}

// calOf is the history of statistic i (0 spike, 1 level, 2 drift,
// 3 variance, 4 seasonality).
func (d *Auto) calOf(i int) *calib {
	if i == 0 {
		return &d.j.cal
	}
	return &d.cal[i-1]
}

// slot is the hour of the day (UTC) of t.
func (d *Auto) slot(t time.Time) int {
	return t.UTC().Hour() % autoSlots
}

// autoGaussZ is the |z| whose two-sided Gaussian tail is 10^-nines.
func autoGaussZ(nines float64) float64 {
	// Inverse of erfc by bisection, once per detector.
	lo, hi := 0.0, 40.0
	target := math.Pow(10, -nines)
	for range 50 {
		m := (lo + hi) / 2
		if math.Erfc(m/math.Sqrt2) > target {
			lo = m
		} else {
			hi = m
		}
	}
	return (lo + hi) / 2
}

// Size implements Sizer.
func (d *Auto) Size() int { return int(unsafe.Sizeof(*d)) }

// Ignored implements Ignorer.
func (d *Auto) Ignored() uint64 { return d.j.ignored }
