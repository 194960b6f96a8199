package detect

import (
	"time"
	"unsafe"
)

// Seasonal compares a value with the EW mean and standard deviation of the
// same time slot in earlier periods: with the defaults, each hour of the
// day (UTC) has its own baseline, so a daily peak is normal at its usual
// hour and anomalous at night. period 168h gives time of day and day of
// week.
//
// Each slot's statistics learn only while their slot is current, with time
// constant baseline·slot/period of in-slot time: baseline 7d means "about
// the last seven days' worth of this slot". A slot judges a value once it
// has seen MinSamples values and the detector has seen a whole period;
// until then the value is judged against a non-seasonal EW baseline (time
// constant period/24, at least MinBaselineSamples samples), so a young
// seasonal detector works as a zscore instead of staying silent.
// State: 304 bytes + 24 bytes per slot (880 bytes for 24 hourly slots).
type Seasonal struct {
	j        judge
	slotNs   int64
	periodNs int64
	tau      int64 // in-slot time constant
	allTau   int64 // time constant of the fallback baseline
	all      ew    // the fallback, non-seasonal baseline
	slots    []ew
}

func newSeasonal(c Config) *Seasonal {
	n := c.Period / c.Slot
	return &Seasonal{
		j:        newJudge(c),
		slotNs:   int64(c.Slot),
		periodNs: int64(c.Period),
		tau:      int64(c.Baseline) / int64(n),
		allTau:   int64(c.Period) / 24,
		slots:    make([]ew, n),
	}
}

// slot is the index of the slot t falls in.
func (d *Seasonal) slot(t time.Time) int {
	ns := t.UnixNano()
	q := ns / d.slotNs
	if ns%d.slotNs < 0 {
		q-- // floor, not truncation, before the epoch
	}
	i := q % int64(len(d.slots))
	if i < 0 {
		i += int64(len(d.slots))
	}
	return int(i)
}

// Observe implements Detector. Baseline is the slot's mean.
func (d *Seasonal) Observe(t time.Time, v float64) Result {
	dt, ok := d.j.admit(t, v)
	if !ok {
		return d.j.skip()
	}
	st := &d.slots[d.slot(t)]
	if d.all.n == 0 {
		d.all.add(v, 1)
		st.add(v, 1)
		return d.j.decide(false, 0, 0, v, v, v)
	}
	seasonal := st.n >= MinSamples && d.j.last-d.j.start >= d.periodNs
	base := &d.all
	if seasonal {
		base = st
	}
	m, s := base.mean, base.scale()
	warm := d.j.warm(MinSamples)
	r := d.j.decide(warm, (v-m)/s, v-m, m, m+d.j.thr*s, m-d.j.thr*s)
	x, xa := v, v
	if warm {
		if st.n > 0 {
			x = clampTo(v, st.mean, d.j.thr, st.scale())
		}
		xa = clampTo(v, d.all.mean, d.j.thr, d.all.scale())
	}
	// dt may span other slots; the in-slot time is at most one slot.
	if st.n == 0 {
		st.add(v, 1)
	} else {
		st.add(x, alpha(min(dt, d.slotNs), d.tau, st.n))
	}
	d.all.add(xa, alpha(dt, d.j.tau(d.allTau), d.all.n))
	return r
}

// Size implements Sizer.
func (d *Seasonal) Size() int {
	return int(unsafe.Sizeof(*d)) + int(unsafe.Sizeof(ew{}))*cap(d.slots)
}

// Ignored implements Ignorer.
func (d *Seasonal) Ignored() uint64 { return d.j.ignored }
