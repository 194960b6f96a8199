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
// the last seven days' worth of this slot". A slot can judge a value once
// it has seen MinSamples values and warmup (default one period) has passed.
// State: 104 bytes + 24 bytes per slot (680 bytes for 24 hourly slots,
// 4136 bytes for 168).
type Seasonal struct {
	j      judge
	slotNs int64
	tau    int64 // in-slot time constant
	slots  []ew
}

func newSeasonal(c Config) *Seasonal {
	n := c.Period / c.Slot
	return &Seasonal{
		j:      newJudge(c),
		slotNs: int64(c.Slot),
		tau:    int64(c.Baseline) / int64(n),
		slots:  make([]ew, n),
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
	if st.n == 0 {
		st.add(v, 1)
		return d.j.decide(false, 0, 0, v, v, v)
	}
	m, s := st.mean, st.scale()
	warm := d.j.warm(MinSamples) && st.n >= MinSamples
	r := d.j.decide(warm, (v-m)/s, v-m, m, m+d.j.thr*s, m-d.j.thr*s)
	x := v
	if warm {
		x = clampTo(v, m, d.j.thr, s)
	}
	// dt may span other slots; the in-slot time is at most one slot.
	st.add(x, alpha(min(dt, d.slotNs), d.tau, st.n))
	return r
}

// Size implements Sizer.
func (d *Seasonal) Size() int {
	return int(unsafe.Sizeof(*d)) + int(unsafe.Sizeof(ew{}))*cap(d.slots)
}

// Ignored implements Ignorer.
func (d *Seasonal) Ignored() uint64 { return d.j.ignored }
