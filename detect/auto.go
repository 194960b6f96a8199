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
//     times slower, which a drift the baseline follows still leaves behind,
//     judged once that baseline has its floor of samples (eight times
//     the baseline's: 1024 by default): before, it is the mean of the
//     little seen so far, and a young series' slow swings (a daily cycle
//     not yet learnt) looked like drifts to it;
//   - variance change: the log ratio of the recent mean squared deviation
//     (clamped) to the baseline's variance, both ways (a flat line is a
//     variance change);
//   - broken seasonality: once the series' period is known (found by
//     autocorrelation: a load cycle of minutes at 1-second steps, a day
//     at 5 minutes or 1 hour; within 2 % of a calendar period, exactly
//     that period), the baseline and every statistic above work on the
//     value less its phase's learnt offset, and this statistic is the
//     value against the offset of its phase: a cycle that stops or
//     turns over shows here. A period is held in autoSlots phases; a
//     week in its 168 hours, so that a weekend's quieter day keeps its
//     own daily cycle. A week is the period when autocorrelation finds
//     it, or when a day is and the days of the week differ in level
//     (after two of each, see weekdays): a quiet weekend used to fire
//     at its edges every week.
//
// The spike statistic, whose deviations are nearly independent from
// sample to sample, judges one beyond the largest of its history by a
// tail fitted to them (calib.tailFitted): a heavy-tailed metric's record
// is not a Gaussian metric's 6σ event.
//
// p is the smallest of the five tail probabilities (the spike
// statistic's times autoSpikeCredit; at steps finer than
// autoConfirmStep only when the previous sample deviated the same way
// by autoConfirmZ) times the number of statistics judged (Bonferroni).
// It fires when -log10(p) >= threshold (default 5: p <= 1e-5) and
// clears when -log10(p) < threshold·hysteresis; a firing that starts at
// a sample the previous one did not announce that way fires from the
// next sample, if that one still fires, so a lone sample never fires;
// within
// autoRefireSamples of a firing episode's end, firing again needs
// autoRefireNines more. The score is 1-p at an episode's onset; for the
// rest of the episode and autoRefractory samples after it, it stays below
// any onset's (see Observe), so that a swept score threshold detects
// each anomaly once, at its start. Direction applies to all but the
// variance statistic. Result.Kind names the statistic (a spike that
// fires on consecutive samples is a level shift). At a firing's onset
// Result.Lead is the interval the firing sample covers (at most the
// learnt step), or two of them when the onset was held back a sample:
// the deviation was measured over that time, so a rule's `for` counts
// from its start, and a `for` shorter than the step is met by the
// firing sample itself. State: fixed, about 4 KiB.
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
	quiet  uint32   // samples since the last firing episode ended
	prevZ  float32  // the previous sample's spike deviation (robust σ)
	lone   bool     // the previous sample's firing was held back (lone)
	pCap   float64  // the least p after an onset: 10^-(threshold-1)
	cal    [4]calib // level, drift, variance, seasonality
	// The seasonal profile: once a period is found, the mean offset of
	// each of its phases from the baseline: autoSlots phases of a period,
	// or autoWeekSlots (the hours of the week) of a week.
	period int64 // ns, 0 while none was found
	off    [autoWeekSlots]float32
	offN   [autoWeekSlots]uint16
	per    periodFinder
	week   weekdays
	// The mean raw value of each hour of the week, learnt while the
	// period in use is not a week: where a week's offsets start.
	hw  [autoWeekSlots]float32
	hwN [autoWeekSlots]uint8
}

const (
	autoSlots    = 24 // hours of the day
	autoLevelA   = 1.0 / 6
	autoDriftA   = 1.0 / 32
	autoVarA     = 1.0 / 16
	autoClamp    = 4 // σ a value may move the baseline by
	autoInClamp  = 3 // σ a value may move the level EWMA and the variance by
	autoDriftMul = 8 // the drift baseline is this much slower
	// The refractory period after a firing episode, in samples, during
	// which the score stays below any onset's unless a deviation is
	// autoBreakNines beyond the threshold; and the shorter one during
	// which firing again needs autoRefireNines more. Tuned with mciv
	// eval on synth seeds 1-60 and SMD/ASD at 5 minutes (RESULTS.md,
	// session 4).
	autoRefractory = 48
	// autoSpikeCredit multiplies the spike statistic's tail probability:
	// the value's own deviation against its own history is the most
	// direct evidence, and judging it two nines more leniently than the
	// smoothed statistics scored best on every tuning corpus (mciv eval,
	// RESULTS.md session 4: swept +7 on SMD/ASD at 5 minutes, synth
	// within 1).
	autoSpikeCredit = 0.01
	// Below autoConfirmStep the spike credit needs confirmation: the
	// previous sample must deviate the same way by at least autoConfirmZ
	// robust σ. At fine steps single-sample noise spikes are many (per
	// hour, and not averaged away), and the credit alone made auto page
	// on them (SMD at 1 minute: 22 520 pages, firing score -31.9); the
	// next sample comes soon, so waiting for it costs little. (At every
	// step a firing's start is held back a sample unless announced so;
	// see Observe.) At 5 minutes and above one sample's spike credit is
	// evidence enough (mciv eval,
	// RESULTS.md session 5).
	autoConfirmStep   = 2 * time.Minute
	autoConfirmZ      = 1
	autoBreakNines    = 4
	autoRefireSamples = 16
	autoRefireNines   = 2
	// autoMaxSince caps the count of a firing's samples; autoLoneBit,
	// above it, marks a held-back onset in the saved state.
	autoMaxSince = 1 << 20
	autoLoneBit  = 1 << 31
)

func newAuto(c Config) *Auto {
	return &Auto{j: newJudge(c), tau: int64(c.Baseline), limZ: autoGaussZ(c.Threshold),
		quiet: math.MaxUint32 / 2, pCap: math.Pow(10, 1-c.Threshold)}
}

// Observe implements Detector. Baseline is the robust EW mean and
// Threshold the value at which the spike statistic alone would fire with
// a Gaussian history (μ ± z·σ for p = 10^-threshold).
func (d *Auto) Observe(t time.Time, v float64) Result {
	dt, ok := d.j.admit(t, v)
	if !ok {
		return d.j.skip()
	}
	if d.per.add(v) {
		d.findPeriod(t)
	}
	if d.period != int64(autoWeek) {
		k := hourOfWeek(t)
		d.hwN[k] = min(d.hwN[k]+1, autoHourOfWeekN)
		d.hw[k] += (float32(v) - d.hw[k]) / float32(d.hwN[k])
		// With a day as the period, a week takes its place when the
		// days of the week differ.
		if d.week.add(t, v, d.j.step) && d.period == int64(autoDay) && d.week.differ() {
			d.adoptWeek()
		}
	}
	if d.nb == 0 {
		d.mu, d.muL, d.lvl, d.mid, d.vr, d.nb = v, v, v, v, 0, 1
		return Result{Baseline: v, Threshold: v}
	}
	// With a period, the statistics judge the value less its phase's
	// offset (the offset once it has been seen MinSamples times).
	slot, offset := -1, 0.0
	if d.period > 0 {
		slot = d.slot(t)
		if d.offN[slot] >= MinSamples {
			offset = float64(d.off[slot])
		}
	}
	raw := v
	v -= offset
	rsd := math.Sqrt(d.vr)
	sd := floorScale(rsd, d.mu)
	z := (v - d.mu) / sd
	lim := d.mu + offset + d.limZ*sd
	if d.j.dir < 0 || (d.j.dir == 0 && z < 0) {
		lim = d.mu + offset - d.limZ*sd
	}
	r := Result{Baseline: d.mu + offset, Threshold: lim}
	warm := d.j.warm(MinSamples)

	// The statistics, before this value updates them.
	zc := min(max(z, -autoInClamp), autoInClamp)
	lvl := d.lvl + autoLevelA*(d.mu+zc*sd-d.lvl)
	mid := d.mid + autoDriftA*(d.mu+zc*sd-d.mid)
	msd := d.msd + autoVarA*(zc*zc-d.msd)
	sLevel := (lvl - d.mu) / (sd * math.Sqrt(autoLevelA/(2-autoLevelA)))
	sDrift := (mid - d.muL) / (sd * math.Sqrt(autoDriftA/(2-autoDriftA)))
	// A fall in variance is judged against the variance the baseline
	// has: below the scale's floor (a series that has always been flat)
	// there is none to lose, and a flat metric does not fire for ever.
	lv := math.Log(max(msd, 1e-6))
	if lv < 0 && sd > rsd {
		lv = min(0, lv-math.Log(max(d.vr/(sd*sd), 1e-6)))
	}
	sVar := math.Abs(lv) / math.Sqrt(2*autoVarA/(2-autoVarA))
	// Broken seasonality: the raw value's deviation from the baseline
	// against the phase's offset, in the direction the offset expects
	// (a cycle that stops or turns over), as much as the offset is large.
	sSeason, seasonal := 0.0, offset != 0
	if seasonal {
		dev := raw - d.mu
		sSeason = (offset - dev) / sd
		if offset < 0 {
			sSeason = -sSeason
		}
		sSeason = min(sSeason, math.Abs(offset)/sd)
		if d.j.dir != 0 && (raw-d.mu-offset)*float64(d.j.dir) < 0 {
			sSeason = 0
		}
	}

	// The statistics are calibrated from MinSamples samples on, and
	// judged once warm.
	d.j.firing = d.j.firing && warm
	if d.nb >= MinSamples {
		stats := [5]float64{d.j.directed(z), d.j.directed(sLevel), d.j.directed(sDrift), sVar, sSeason}
		kinds := [5]string{KindSpike, KindLevelShift, KindDrift, KindVariance, KindSeasonality}
		k := 4
		if seasonal {
			k = 5
		}
		// A deviation that would fire from quiet is anomalous for the
		// history even when the refire rule keeps it from firing.
		// announced: the previous sample deviated the same way by
		// autoConfirmZ.
		anomalous, lone := false, false
		announced := float64(d.prevZ)*z > 0 && math.Abs(float64(d.prevZ)) >= autoConfirmZ
		if warm && math.Abs(v-d.mu) >= d.j.minDelta {
			p, kind := 1.0, ""
			credit := autoSpikeCredit
			if d.j.step < int64(autoConfirmStep) && !announced {
				credit = 1
			}
			// The drift statistic is judged once its baseline, autoDriftMul
			// times slower than the main one, has its floor of samples.
			driftWarm := d.nb >= autoDriftMul*d.j.minBase
			for i := range k {
				var pi float64
				switch {
				case i == 0:
					pi = d.j.cal.tailFitted(max(stats[i], 0)) * credit
				case i == 2 && !driftWarm:
					pi = 1
				default:
					pi = d.calOf(i).tail(max(stats[i], 0))
				}
				if pi < p {
					p, kind = pi, kinds[i]
				}
			}
			p = min(1, p*float64(k))
			nines := -math.Log10(max(p, pFloor))
			anomalous = nines >= d.j.thr
			// After a firing episode, a new one needs autoRefireNines
			// more for autoRefireSamples samples: one anomaly that wavers
			// around the threshold pages once.
			need := d.j.thr
			switch {
			case d.j.firing:
				need = d.j.thr * d.j.hyst
			case d.quiet < autoRefireSamples:
				need = d.j.thr + autoRefireNines
			}
			onset := !d.j.firing
			d.j.firing = nines >= need
			// A firing that starts at a sample the one before did not
			// announce is held back one sample: it fires from the next
			// sample if that one still fires (at the hysteresis level),
			// so a lone sample never fires, at any step. Scores and
			// episodes count as if it had fired, so the ranking a swept
			// threshold sees is unchanged.
			lone = onset && d.j.firing && !announced
			if kind == KindSpike && d.j.firing && d.since > 0 {
				kind = KindLevelShift // a spike that lasts
			}
			// The score discounts p by the length of the firing episode
			// (a Bonferroni correction over its samples), and ranks every
			// sample of an episode after its onset, and of the
			// autoRefractory samples after it, below any onset (p at least
			// 10^-(threshold-1)), unless a new deviation there is
			// autoBreakNines stronger than the threshold: a swept score
			// threshold then finds each anomaly once, at its start, as NAB-
			// like scoring rewards, and does not pay for every later sample
			// of a lasting change.
			pe := p * float64(1+d.since)
			if d.since > 0 || (d.quiet < autoRefractory && nines < d.j.thr+autoBreakNines) {
				pe = max(pe, d.pCap)
			}
			r.Score = 1 - min(1, pe)
			if p < 1 {
				r.Kind = kind
			}
		} else {
			d.j.firing = false
		}
		if d.j.firing {
			d.since = min(d.since+1, autoMaxSince)
			d.quiet = 0
		} else {
			if d.since > 0 {
				d.quiet = 0
			}
			d.since = 0
			d.quiet = min(d.quiet+1, math.MaxUint32/2)
		}
		r.Firing = d.j.firing && !lone
		// The onset's lead: the firing sample stands for the interval it
		// covers (a value measured over it), and an onset held back a
		// sample began at the held one. Counting a rule's `for` from
		// there makes a 5s `for` wait four more samples at 1-second
		// steps and none at 1 or 5 minutes, where one sample covers more
		// than 5s (RESULTS.md, session 7); before, only an onset the
		// previous sample announced by 1.5σ had a lead.
		switch {
		case r.Firing && d.since == 1:
			r.Lead = time.Duration(min(dt, d.j.step))
		case r.Firing && d.since == 2 && d.lone:
			r.Lead = time.Duration(2 * min(dt, d.j.step))
		}
		d.lone = lone
		for i := range k {
			d.calOf(i).add(max(stats[i], 0), d.j.firing || anomalous)
		}
	}

	d.prevZ = float32(z)

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
	if slot >= 0 {
		// The phase's offset learns the raw value's deviation from the
		// baseline, clamped once the phase is known.
		dev := raw - d.mu
		if d.offN[slot] >= MinSamples {
			dev = clampTo(dev, offset, autoClamp, sd)
		}
		sa := 1 / float64(min(int(d.offN[slot])+1, 64))
		d.off[slot] += float32(sa * (dev - float64(d.off[slot])))
		if d.offN[slot] < math.MaxUint16 {
			d.offN[slot]++
		}
	}
	return r
}

// findPeriod looks for the series' period in the finder's blocks, which
// end at t, and adopts it with the offsets of its phases from the blocks
// when it differs from the one in use by more than 2 % (a longer history
// finds it more exactly), while the blocks still resolve the one in use.
func (d *Auto) findPeriod(t time.Time) {
	p := &d.per
	blocks := p.buf[:p.n]
	lag := acfPeriod(blocks, int(p.b))
	per := calendarPeriod(int64(lag * float64(int64(p.b)*d.j.step)))
	if lag*float64(p.b) < autoMinPeriod && per != int64(24*time.Hour) {
		lag = 0 // too short to be a season: noise to the baseline
	}
	if d.period > 0 && d.period < autoPeriodBlocks*int64(p.b)*d.j.step {
		lag = 0 // the blocks have grown too coarse to see the period in use
	}
	if d.period == int64(autoWeek) {
		// A week in use is kept: its hours hold every cycle of a
		// calendar period from an hour to a day, and a weekend makes the
		// autocorrelation peak at odd lags (six days).
		lag = 0
	}
	if lag > 0 && d.j.step > 0 && per == int64(autoWeek) {
		d.adoptWeek()
	} else if lag > 0 && d.j.step > 0 && math.Abs(float64(per-d.period)) > 0.02*float64(per) {
		d.period = per
		mean := 0.0
		for _, x := range blocks {
			mean += float64(x)
		}
		mean /= float64(len(blocks))
		var sum [autoSlots]float64 // a week does not come here: adoptWeek
		var cnt [autoSlots]int
		bt := int64(p.b) * d.j.step
		for i, x := range blocks {
			k := d.slot(t.Add(-time.Duration(int64(len(blocks)-1-i)*bt + bt/2)))
			sum[k] += float64(x) - mean
			cnt[k]++
		}
		d.off, d.offN = [autoWeekSlots]float32{}, [autoWeekSlots]uint16{}
		for k := range sum {
			if cnt[k] > 0 {
				d.off[k] = float32(sum[k] / float64(cnt[k]))
				d.offN[k] = uint16(min(cnt[k]*int(p.b), MinSamples))
			}
		}
		fillPhases(d.off[:autoSlots], d.offN[:autoSlots])
	}
	p.shrink()
}

// The week.
const (
	autoDay       = 24 * time.Hour
	autoWeek      = 7 * autoDay
	autoWeekSlots = 7 * autoSlots // the hours of the week
	// autoHourOfWeekN is the most samples the mean of an hour of the
	// week weighs: beyond it, an EW mean of that many.
	autoHourOfWeekN = 64
)

// adoptWeek makes a week the period in use: the offset of each hour of
// the week starts as its mean raw value less the mean of all the hours,
// and learns from there.
func (d *Auto) adoptWeek() {
	mean, n := 0.0, 0
	for k := range autoWeekSlots {
		if d.hwN[k] > 0 {
			mean += float64(d.hw[k])
			n++
		}
	}
	if n == 0 {
		return
	}
	mean /= float64(n)
	for k := range autoWeekSlots {
		d.off[k], d.offN[k] = 0, 0
		if d.hwN[k] > 0 {
			d.off[k], d.offN[k] = d.hw[k]-float32(mean), MinSamples
		}
	}
	fillPhases(d.off[:], d.offN[:])
	d.period = int64(autoWeek)
	// The values less their offsets now sit at the week's mean: the
	// baseline and the level and drift means start there, or the
	// weekday's level the baseline had reached (a weekend's) would show
	// as a shift or a drift.
	d.mu, d.lvl, d.mid = mean, mean, mean
}

// hourOfWeek is the hour of the week of t, counted from Thursday 00:00
// UTC (1970-01-01 was a Thursday): the phase slot of t in a week.
func hourOfWeek(t time.Time) int { return phaseSlot(t, int64(autoWeek), autoWeekSlots) }

// fillPhases gives a phase that has no offset the offset of the nearest
// one before it that has (blocks longer than a phase: an hour of the week
// at hourly steps).
func fillPhases(off []float32, n []uint16) {
	for range 2 {
		for k := range off {
			if prev := (k + len(off) - 1) % len(off); n[k] == 0 && n[prev] > 0 {
				off[k], n[k] = off[prev], n[prev]
			}
		}
	}
}

// weekdays tells whether the days of the week differ in level (a
// weekend's quieter load), which a day's phase offsets cannot hold: the
// mean of each whole UTC day is grouped by weekday, and a one-way
// analysis of variance compares the weekdays' means with how much the
// days of one weekday vary. 192 bytes.
type weekdays struct {
	day     int64   // the UTC day being summed (days since 1970-01-01, a Thursday)
	sum     float64 // of its values
	n       uint32  // its samples
	s, q, c [7]float64
	// per weekday (0 Thursday): sums of day means and of their squares,
	// and the count of days, all halved when the count reaches
	// autoWeekDays, so that they follow the last few months.
}

const (
	// autoWeekMinDays is the fewest days of each weekday before the
	// weekdays are compared, and autoWeekDays the most they hold.
	autoWeekMinDays = 2
	autoWeekDays    = 12
	// autoWholeDay is the share of a day's samples a day must have to
	// count.
	autoWholeDay = 0.9
)

// autoWeekFs is the F statistic at which the weekdays differ, by the
// fewest days any weekday has (c): p = 10^-4 with 6 and 7·(c-1) degrees
// of freedom were the day means independent and alike (by simulation).
// Of a hundred ten-week series whose days' levels vary at random, one
// took a week (with 32 after two weeks; with 8 after two weeks, three
// did); a weekend at 0.8 of the week's is taken after two.
var autoWeekFs = [...]float64{0, 0, 32, 12, 8.6, 7.0, 6.5, 6.3, 5.8}

// add folds in v at t and reports whether it ended a whole day (step:
// the learnt sampling interval).
func (w *weekdays) add(t time.Time, v float64, step int64) bool {
	if t.Unix() < 0 || step <= 0 {
		return false
	}
	day := t.Unix() / 86400
	if day == w.day {
		w.sum += v
		w.n++
		return false
	}
	whole := w.n > 0 && float64(w.n) >= autoWholeDay*float64(int64(autoDay)/step)
	if whole {
		k := w.day % 7
		m := w.sum / float64(w.n)
		w.s[k] += m
		w.q[k] += m * m
		w.c[k]++
		if w.c[k] >= autoWeekDays {
			for i := range 7 {
				w.s[i], w.q[i], w.c[i] = w.s[i]/2, w.q[i]/2, w.c[i]/2
			}
		}
	}
	w.day, w.sum, w.n = day, v, 1
	return whole
}

// differ reports whether the weekdays' mean levels differ.
func (w *weekdays) differ() bool {
	var n, sum float64
	least := math.Inf(1)
	for k := range 7 {
		if w.c[k] < autoWeekMinDays {
			return false
		}
		least = min(least, w.c[k])
		n += w.c[k]
		sum += w.s[k]
	}
	grand := sum / n
	var between, within float64
	for k := range 7 {
		m := w.s[k] / w.c[k]
		between += w.c[k] * (m - grand) * (m - grand)
		within += max(0, w.q[k]-w.c[k]*m*m)
	}
	between /= 6
	within /= n - 7
	f := autoWeekFs[min(int(least), len(autoWeekFs)-1)]
	return between > f*within && between > 0
}

// calendarPeriods are the periods people and schedulers keep: cron
// intervals, the hours of a shift, a day, a week.
var calendarPeriods = [...]time.Duration{
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
	20 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour,
	4 * time.Hour, 6 * time.Hour, 8 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	7 * 24 * time.Hour,
}

// calendarSnap is how near (relative) an estimated period must be to a
// calendar one to be taken as it: 2 % scored best of 1, 2, 3 and 5 % with
// mciv eval (RESULTS.md, session 8; at 1 % most of ASD's gain is lost).
const calendarSnap = 0.02

// calendarPeriod is per (ns) snapped to the calendar period within
// calendarSnap of it, else per. An estimate is off by a fraction of a
// block or more (0.1-0.6 % for a clean day at 5-minute steps): the phase
// of each sample, its time modulo the period, then drifts by that much
// every period, and within a couple of weeks a daily cycle's steps land
// in the wrong phase slots and fire (a square wave paged at every edge).
// The series of a database host keep the calendar's periods exactly.
func calendarPeriod(per int64) int64 {
	for _, c := range calendarPeriods {
		if math.Abs(float64(per-int64(c))) <= calendarSnap*float64(c) {
			return int64(c)
		}
	}
	return per
}

// calOf is the history of statistic i (0 spike, 1 level, 2 drift,
// 3 variance, 4 seasonality).
func (d *Auto) calOf(i int) *calib {
	if i == 0 {
		return &d.j.cal
	}
	return &d.cal[i-1]
}

// slots is the number of phases of the period in use: the hours of the
// week for a week, else autoSlots.
func (d *Auto) slots() int {
	if d.period == int64(autoWeek) {
		return autoWeekSlots
	}
	return autoSlots
}

// slot is the phase of t in the period, one of slots().
func (d *Auto) slot(t time.Time) int { return phaseSlot(t, d.period, d.slots()) }

// phaseSlot is which of n equal slots of a period (ns, counted from the
// Unix epoch) t falls in.
func phaseSlot(t time.Time, period int64, n int) int {
	ph := t.UnixNano() % period
	if ph < 0 {
		ph += period
	}
	return int(ph * int64(n) / period)
}

// periodFinder finds a series' period by autocorrelation, in bounded
// memory: it keeps the means of blocks of b samples, and when its buffer
// fills it looks for a period and then halves its resolution (b doubles),
// so it sees periods of autoSlots samples up to about half of what
// it has seen.
type periodFinder struct {
	buf    [autoACF]float32
	acc    float64 // sum of the current block
	b      uint32  // samples per block
	accN   uint32
	n      uint16 // blocks in buf
	gaveUp bool
}

const (
	autoACF     = 256
	autoACFMin  = 0.3  // the least autocorrelation a period must have
	autoACFNear = 0.85 // a peak this near the highest is the period
	// autoMinPeriod is the shortest period in samples: two per phase
	// slot; shorter cycles are noise to the baseline, not seasons, except
	// a day (the season that matters most) at steps of up to an hour:
	// one sample per slot (autoSlots), which acfPeriod looks for.
	autoMinPeriod = 2 * autoSlots
	autoACFMaxB   = 1 << 12 // the finder gives up past 4096-sample blocks
	// autoPeriodBlocks is the fewest blocks the period in use must span
	// for a new estimate to replace it. With coarser blocks the
	// autocorrelation no longer resolves it: a daily cycle at 5-minute
	// steps was taken for a 48-hour one in its sixth week (4.5 blocks a
	// day), and fired (TestAutoKeepsItsPeriodForWeeks).
	autoPeriodBlocks = 8
)

// add folds v in and reports whether a look for a period is due.
func (p *periodFinder) add(v float64) bool {
	if p.gaveUp {
		return false
	}
	if p.b == 0 {
		p.b = 1
	}
	p.acc += v
	p.accN++
	if p.accN < p.b {
		return false
	}
	p.buf[p.n] = float32(p.acc / float64(p.accN))
	p.n++
	p.acc, p.accN = 0, 0
	return p.n == autoACF || p.n == autoACF*3/4
}

// shrink halves the resolution once the buffer is full.
func (p *periodFinder) shrink() {
	if p.n < autoACF {
		return
	}
	for i := range autoACF / 2 {
		p.buf[i] = (p.buf[2*i] + p.buf[2*i+1]) / 2
	}
	p.n = autoACF / 2
	p.b *= 2
	if p.b > autoACFMaxB {
		p.gaveUp = true
	}
}

// acfPeriod is the lag (in blocks of b samples, with a fraction) of the
// first peak of the autocorrelation of xs, after it has first gone
// negative, that is above autoACFMin and nearly as high as the highest
// (autoACFNear), below 2/3 of xs; 0 when there is none or it is shorter
// than autoSlots samples.
func acfPeriod(xs []float32, b int) float64 {
	n := len(xs)
	mean := 0.0
	for _, x := range xs {
		mean += float64(x)
	}
	mean /= float64(n)
	v0 := 0.0
	for _, x := range xs {
		v0 += (float64(x) - mean) * (float64(x) - mean)
	}
	if v0 == 0 {
		return 0
	}
	acf := func(lag int) float64 {
		s := 0.0
		for i := lag; i < n; i++ {
			s += (float64(xs[i]) - mean) * (float64(xs[i-lag]) - mean)
		}
		return s / v0 * float64(n) / float64(n-lag)
	}
	lo := max(1, (autoSlots+b-1)/b)
	hi := n * 2 / 3
	type peak struct {
		lag int
		at  [3]float64
	}
	var peaks [16]peak
	np := 0
	best := autoACFMin
	wentNeg := false
	prev, cur := 1.0, acf(1)
	for lag := 1; lag < hi && np < len(peaks); lag++ {
		next := acf(lag + 1)
		if cur < 0 {
			wentNeg = true
		}
		// Above autoACFMin, and beyond what noise gives over n-lag pairs
		// (4 standard errors).
		if wentNeg && cur > max(autoACFMin, 4/math.Sqrt(float64(n-lag))) && cur >= prev && cur >= next {
			peaks[np] = peak{lag, [3]float64{prev, cur, next}}
			np++
			best = max(best, cur)
		}
		prev, cur = cur, next
	}
	// The first peak nearly as high as the highest: the period, not one
	// of its multiples.
	bestLag, at := 0, [3]float64{}
	for _, pk := range peaks[:np] {
		if pk.at[1] >= autoACFNear*best {
			bestLag, at = pk.lag, pk.at
			break
		}
	}
	if bestLag < lo {
		return 0 // none, or a cycle too short to be a season
	}
	// The peak between lags, from the parabola through three points.
	frac := 0.0
	if den := at[0] - 2*at[1] + at[2]; den < 0 {
		frac = min(max(0.5*(at[0]-at[2])/den, -0.5), 0.5)
	}
	return float64(bestLag) + frac
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
