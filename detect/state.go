package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

// Stater is implemented by every detector of this package: its state (the
// learnt baseline, warm-up progress, calibration history and firing
// state) as a compact, versioned binary encoding, so that a detector
// restored into a fresh one of the same Spec gives exactly the verdicts
// the original would have given on the samples that follow. It lets an
// analyzer keep its baselines across a restart or a hand-over.
//
// The encoding is: the magic "mcDS", StateVersion, the detector's type
// tag, the configuration the state was learnt with, the state, and a
// CRC-32C of all that. LoadState rejects truncated, corrupt or
// other-version input, the state of another type of detector and state
// learnt with another configuration, and then leaves the detector as it
// was.
type Stater interface {
	// AppendState appends the encoded state to dst.
	AppendState(dst []byte) []byte
	// LoadState replaces the detector's state with the encoded b.
	LoadState(b []byte) error
}

// Every detector of this package keeps its state across restarts.
var (
	_ Stater = (*Threshold)(nil)
	_ Stater = (*ZScore)(nil)
	_ Stater = (*RobustZScore)(nil)
	_ Stater = (*EWMA)(nil)
	_ Stater = (*CUSUM)(nil)
	_ Stater = (*Seasonal)(nil)
	_ Stater = (*Auto)(nil)
	_ Stater = (*RateOfChange)(nil)
	_ Stater = (*Absence)(nil)
)

// StateVersion is the version of the state encoding AppendState writes
// and LoadState reads.
const StateVersion = 2

// Errors of LoadState (wrapped in a StateError).
var (
	// ErrStateCorrupt: the input is truncated, too long, fails its
	// checksum or holds impossible values.
	ErrStateCorrupt = errors.New("corrupt detector state")
	// ErrStateVersion: the input is of another encoding version.
	ErrStateVersion = errors.New("unsupported detector state version")
	// ErrStateMismatch: the input is the state of another type of
	// detector, or of one with another configuration.
	ErrStateMismatch = errors.New("detector state of another detector")
)

// StateError is an error of LoadState: the detector type and the problem.
type StateError struct {
	Type string
	Err  error
}

// Error names the detector type.
func (e *StateError) Error() string { return "detect: loading " + e.Type + " state: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *StateError) Unwrap() error { return e.Err }

// stateMagic starts every encoded state.
const stateMagic = "mcDS"

// Type tags of the encoded state.
const (
	tagThreshold uint8 = iota + 1
	tagZScore
	tagRobust
	tagEWMA
	tagCUSUM
	tagSeasonal
	tagAuto
	tagRate
	tagAbsence
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// stateEnc appends little-endian fields.
type stateEnc struct{ b []byte }

func beginState(dst []byte, tag uint8) stateEnc {
	dst = append(dst, stateMagic...)
	return stateEnc{b: append(dst, StateVersion, tag)}
}

func (w *stateEnc) u8(x uint8)   { w.b = append(w.b, x) }
func (w *stateEnc) u16(x uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, x) }
func (w *stateEnc) u32(x uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, x) }
func (w *stateEnc) u64(x uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, x) }
func (w *stateEnc) i64(x int64)  { w.u64(uint64(x)) }
func (w *stateEnc) f64(x float64) {
	w.u64(math.Float64bits(x))
}
func (w *stateEnc) f32(x float32) { w.u32(math.Float32bits(x)) }
func (w *stateEnc) bool(x bool) {
	if x {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

// end appends the checksum of everything from start on.
func (w *stateEnc) end(start int) []byte {
	return binary.LittleEndian.AppendUint32(w.b, crc32.Checksum(w.b[start:], crcTable))
}

// stateDec reads what stateEnc wrote; the first problem sticks in err.
type stateDec struct {
	b   []byte
	err error
}

// openState checks the frame of b (magic, version, tag, checksum) and
// returns a reader of its body.
func openState(b []byte, tag uint8) (stateDec, error) {
	const head = len(stateMagic) + 2
	if len(b) < head+4 {
		return stateDec{}, fmt.Errorf("%w: %d bytes, too short", ErrStateCorrupt, len(b))
	}
	if string(b[:len(stateMagic)]) != stateMagic {
		return stateDec{}, fmt.Errorf("%w: bad magic", ErrStateCorrupt)
	}
	if v := b[len(stateMagic)]; v != StateVersion {
		return stateDec{}, fmt.Errorf("%w: %d (want %d)", ErrStateVersion, v, StateVersion)
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return stateDec{}, fmt.Errorf("%w: checksum mismatch", ErrStateCorrupt)
	}
	if t := b[len(stateMagic)+1]; t != tag {
		return stateDec{}, fmt.Errorf("%w: type tag %d (want %d)", ErrStateMismatch, t, tag)
	}
	return stateDec{b: body[head:]}, nil
}

func (r *stateDec) take(n int) []byte {
	if r.err != nil {
		return make([]byte, n)
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%w: truncated", ErrStateCorrupt)
		r.b = nil
		return make([]byte, n)
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *stateDec) u8() uint8    { return r.take(1)[0] }
func (r *stateDec) u16() uint16  { return binary.LittleEndian.Uint16(r.take(2)) }
func (r *stateDec) u32() uint32  { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *stateDec) u64() uint64  { return binary.LittleEndian.Uint64(r.take(8)) }
func (r *stateDec) i64() int64   { return int64(r.u64()) }
func (r *stateDec) f64() float64 { return math.Float64frombits(r.u64()) }
func (r *stateDec) f32() float32 { return math.Float32frombits(r.u32()) }
func (r *stateDec) bool() bool   { return r.flag(r.u8()) }
func (r *stateDec) flag(x uint8) bool {
	if x > 1 {
		r.fail("flag %d is not 0 or 1", x)
	}
	return x == 1
}

// fail records a corrupt value.
func (r *stateDec) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrStateCorrupt}, args...)...)
	}
}

// same checks that a configuration value in the state is the detector's.
func (r *stateDec) same(what string, got, want uint64) {
	if r.err == nil && got != want {
		r.err = fmt.Errorf("%w: %s differs (state %d, detector %d)", ErrStateMismatch, what, got, want)
	}
}

func (r *stateDec) sameF(what string, got, want float64) {
	r.same(what, math.Float64bits(got), math.Float64bits(want))
}

// done is the outcome of the read: an error also when bytes are left.
func (r *stateDec) done(typ string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrStateCorrupt, len(r.b))
	}
	if r.err != nil {
		return &StateError{Type: typ, Err: r.err}
	}
	return nil
}

// load opens b for a detector of type typ and tag, runs read on its body
// and checks that it was read whole.
func load(b []byte, typ string, tag uint8, read func(r *stateDec)) error {
	r, err := openState(b, tag)
	if err != nil {
		return &StateError{Type: typ, Err: err}
	}
	read(&r)
	return r.done(typ)
}

// The judge: its configuration, then its state.

func (j *judge) appendState(w *stateEnc) {
	w.f64(j.thr)
	w.f64(j.hyst)
	w.f64(j.minDelta)
	w.i64(j.warmup)
	w.u32(j.minBase)
	w.u32(j.minWarm)
	w.u8(uint8(j.dir))
	w.i64(j.start)
	w.i64(j.last)
	w.i64(j.step)
	w.u64(j.ignored)
	w.u32(j.n)
	w.bool(j.started)
	w.bool(j.firing)
	j.cal.appendState(w)
}

// loadState reads into j, whose configuration the state's must be.
func (j *judge) loadState(r *stateDec) {
	r.sameF("threshold", r.f64(), j.thr)
	r.sameF("hysteresis", r.f64(), j.hyst)
	r.sameF("min_delta", r.f64(), j.minDelta)
	r.same("warmup", uint64(r.i64()), uint64(j.warmup))
	r.same("baseline_samples", uint64(r.u32()), uint64(j.minBase))
	r.same("warmup_samples", uint64(r.u32()), uint64(j.minWarm))
	r.same("direction", uint64(r.u8()), uint64(uint8(j.dir)))
	j.start, j.last, j.step = r.i64(), r.i64(), r.i64()
	j.ignored, j.n = r.u64(), r.u32()
	j.started, j.firing = r.bool(), r.bool()
	if j.step < 0 {
		r.fail("negative sampling interval")
	}
	j.cal.loadState(r)
}

func (c *calib) appendState(w *stateEnc) {
	for _, x := range c.bins {
		w.f32(x)
	}
	w.f64(c.total)
	w.f64(c.w)
}

func (c *calib) loadState(r *stateDec) {
	for i := range c.bins {
		c.bins[i] = r.f32()
	}
	c.total, c.w = r.f64(), r.f64()
}

func (e *ew) appendState(w *stateEnc) {
	w.f64(e.mean)
	w.f64(e.vari)
	w.u64(e.n)
}

func (e *ew) loadState(r *stateDec) {
	e.mean, e.vari, e.n = r.f64(), r.f64(), r.u64()
}

// AppendState implements Stater.
func (d *ZScore) AppendState(dst []byte) []byte {
	w := beginState(dst, tagZScore)
	w.i64(d.tau)
	d.j.appendState(&w)
	d.stats.appendState(&w)
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *ZScore) LoadState(b []byte) error {
	x := *d
	err := load(b, "zscore", tagZScore, func(r *stateDec) {
		r.same("baseline", uint64(r.i64()), uint64(x.tau))
		x.j.loadState(r)
		x.stats.loadState(r)
	})
	if err == nil {
		*d = x
	}
	return err
}

// AppendState implements Stater.
func (d *EWMA) AppendState(dst []byte) []byte {
	w := beginState(dst, tagEWMA)
	w.i64(d.tau)
	w.f64(d.lambda)
	d.j.appendState(&w)
	d.stats.appendState(&w)
	w.f64(d.s)
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *EWMA) LoadState(b []byte) error {
	x := *d
	err := load(b, "ewma", tagEWMA, func(r *stateDec) {
		r.same("baseline", uint64(r.i64()), uint64(x.tau))
		r.sameF("lambda", r.f64(), x.lambda)
		x.j.loadState(r)
		x.stats.loadState(r)
		x.s = r.f64()
	})
	if err == nil {
		*d = x
	}
	return err
}

// AppendState implements Stater.
func (d *CUSUM) AppendState(dst []byte) []byte {
	w := beginState(dst, tagCUSUM)
	w.i64(d.tau)
	w.f64(d.k)
	d.j.appendState(&w)
	d.stats.appendState(&w)
	w.f64(d.pos)
	w.f64(d.neg)
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *CUSUM) LoadState(b []byte) error {
	x := *d
	err := load(b, "cusum", tagCUSUM, func(r *stateDec) {
		r.same("baseline", uint64(r.i64()), uint64(x.tau))
		r.sameF("k", r.f64(), x.k)
		x.j.loadState(r)
		x.stats.loadState(r)
		x.pos, x.neg = r.f64(), r.f64()
	})
	if err == nil {
		*d = x
	}
	return err
}

// AppendState implements Stater. The window is written in arrival order;
// its sorted copy, median and scale are derived from it on load.
func (d *RobustZScore) AppendState(dst []byte) []byte {
	w := beginState(dst, tagRobust)
	w.i64(d.spacing)
	w.u32(uint32(cap(d.ring)))
	d.j.appendState(&w)
	w.i64(d.next)
	w.u32(uint32(d.head))
	w.u32(uint32(len(d.ring)))
	for _, x := range d.ring {
		w.f32(x)
	}
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *RobustZScore) LoadState(b []byte) error {
	x := *d
	err := load(b, "robust_zscore", tagRobust, func(r *stateDec) {
		r.same("spacing", uint64(r.i64()), uint64(x.spacing))
		r.same("samples", uint64(r.u32()), uint64(cap(x.ring)))
		x.j.loadState(r)
		x.next = r.i64()
		head, n := r.u32(), r.u32()
		if r.err != nil {
			return
		}
		if int(n) > cap(d.ring) || (int(n) < cap(d.ring) && head != 0) || (n > 0 && head >= n) {
			r.fail("window of %d values with head %d (capacity %d)", n, head, cap(d.ring))
			return
		}
		x.ring = make([]float32, n, cap(d.ring))
		for i := range x.ring {
			if v := r.f32(); v != v {
				r.fail("NaN in the window")
			} else {
				x.ring[i] = v
			}
		}
		x.head = int32(head)
		x.sorted = append(make([]float32, 0, cap(d.sorted)), x.ring...)
		slices.Sort(x.sorted)
		x.med, x.mad = 0, 0
		if n > 0 {
			x.med, x.mad = medianMAD(x.sorted)
		}
	})
	if err == nil {
		*d = x
	}
	return err
}

// AppendState implements Stater.
func (d *Seasonal) AppendState(dst []byte) []byte {
	w := beginState(dst, tagSeasonal)
	w.i64(d.slotNs)
	w.i64(d.periodNs)
	w.i64(d.tau)
	w.i64(d.allTau)
	w.u32(uint32(len(d.slots)))
	d.j.appendState(&w)
	d.all.appendState(&w)
	for i := range d.slots {
		d.slots[i].appendState(&w)
	}
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *Seasonal) LoadState(b []byte) error {
	x := *d
	x.slots = make([]ew, len(d.slots))
	err := load(b, "seasonal", tagSeasonal, func(r *stateDec) {
		r.same("slot", uint64(r.i64()), uint64(x.slotNs))
		r.same("period", uint64(r.i64()), uint64(x.periodNs))
		r.same("baseline", uint64(r.i64()), uint64(x.tau))
		r.same("fallback baseline", uint64(r.i64()), uint64(x.allTau))
		r.same("slots", uint64(r.u32()), uint64(len(x.slots)))
		x.j.loadState(r)
		x.all.loadState(r)
		for i := range x.slots {
			x.slots[i].loadState(r)
		}
	})
	if err == nil {
		*d = x
	}
	return err
}

// AppendState implements Stater.
func (d *RateOfChange) AppendState(dst []byte) []byte {
	w := beginState(dst, tagRate)
	w.i64(d.window)
	w.i64(d.spacing)
	d.j.appendState(&w)
	w.i64(d.next)
	w.u32(uint32(d.head))
	w.u32(uint32(d.n))
	for i := range rocPoints {
		w.i64(d.ts[i])
		w.f64(d.vs[i])
	}
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *RateOfChange) LoadState(b []byte) error {
	x := *d
	err := load(b, "rate_of_change", tagRate, func(r *stateDec) {
		r.same("window", uint64(r.i64()), uint64(x.window))
		r.same("spacing", uint64(r.i64()), uint64(x.spacing))
		x.j.loadState(r)
		x.next = r.i64()
		head, n := r.u32(), r.u32()
		if head >= rocPoints || n > rocPoints {
			r.fail("ring head %d, %d values (of %d)", head, n, rocPoints)
		}
		x.head, x.n = int32(head), int32(n)
		for i := range rocPoints {
			x.ts[i], x.vs[i] = r.i64(), r.f64()
		}
	})
	if err == nil {
		*d = x
	}
	return err
}

// AppendState implements Stater.
func (d *Auto) AppendState(dst []byte) []byte {
	w := beginState(dst, tagAuto)
	w.i64(d.tau)
	d.j.appendState(&w)
	for _, x := range [...]float64{d.mu, d.vr, d.muL, d.lvl, d.mid, d.msd} {
		w.f64(x)
	}
	w.u32(d.nb)
	// A held-back onset (lone) rides in the top bit of since, which
	// stays below 2^21: states written before it load as not held.
	since := d.since
	if d.lone {
		since |= autoLoneBit
	}
	w.u32(since)
	w.u32(d.quiet)
	w.f32(d.prevZ)
	for i := range d.cal {
		d.cal[i].appendState(&w)
	}
	w.i64(d.period)
	for i := range autoSlots {
		w.f32(d.off[i])
		w.u16(d.offN[i])
	}
	p := &d.per
	w.f64(p.acc)
	w.u32(p.b)
	w.u32(p.accN)
	w.bool(p.gaveUp)
	w.u16(p.n)
	for _, x := range p.buf[:p.n] {
		w.f32(x)
	}
	// The week, after all that states written before it hold: the
	// weekdays' levels, and the offsets of a week's hours beyond the
	// first autoSlots when the period is a week, else the hours' means.
	wd := &d.week
	w.i64(wd.day)
	w.f64(wd.sum)
	w.u32(wd.n)
	for k := range 7 {
		w.f64(wd.s[k])
		w.f64(wd.q[k])
		w.f64(wd.c[k])
	}
	if d.period == int64(autoWeek) {
		for i := autoSlots; i < autoWeekSlots; i++ {
			w.f32(d.off[i])
			w.u16(d.offN[i])
		}
	} else {
		for i := range autoWeekSlots {
			w.f32(d.hw[i])
			w.u8(d.hwN[i])
		}
	}
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *Auto) LoadState(b []byte) error {
	x := *d
	err := load(b, "auto", tagAuto, func(r *stateDec) {
		r.same("baseline", uint64(r.i64()), uint64(x.tau))
		x.j.loadState(r)
		for _, f := range [...]*float64{&x.mu, &x.vr, &x.muL, &x.lvl, &x.mid, &x.msd} {
			*f = r.f64()
		}
		x.nb, x.since, x.quiet = r.u32(), r.u32(), r.u32()
		x.lone, x.since = x.since&autoLoneBit != 0, x.since&^autoLoneBit
		if x.since > autoMaxSince {
			r.fail("firing for %d samples (at most %d)", x.since, autoMaxSince)
		}
		x.prevZ = r.f32()
		for i := range x.cal {
			x.cal[i].loadState(r)
		}
		// Periods and blocks are bounded so that the phase arithmetic
		// (phase·autoSlots, lag·block·step) cannot overflow: 2^58 ns is
		// nine years.
		x.period = r.i64()
		if x.period < 0 || x.period > autoMaxSpan {
			r.fail("period %d ns out of range", x.period)
		}
		for i := range autoSlots {
			x.off[i], x.offN[i] = r.f32(), r.u16()
		}
		p := &x.per
		p.acc, p.b, p.accN, p.gaveUp, p.n = r.f64(), r.u32(), r.u32(), r.bool(), r.u16()
		if p.n > autoACF {
			r.fail("%d period blocks (at most %d)", p.n, autoACF)
			return
		}
		if p.b > 2*autoACFMaxB || (x.j.step > 0 && uint64(p.b) > uint64(autoMaxSpan/autoACF/x.j.step)) {
			r.fail("period block of %d samples of %d ns", p.b, x.j.step)
		}
		p.buf = [autoACF]float32{}
		for i := range p.buf[:p.n] {
			p.buf[i] = r.f32()
		}
		// A state written before the week ends here: it loads with no
		// week learnt.
		x.week, x.hw, x.hwN = weekdays{}, [autoWeekSlots]float32{}, [autoWeekSlots]uint8{}
		for i := autoSlots; i < autoWeekSlots; i++ {
			x.off[i], x.offN[i] = 0, 0
		}
		if len(r.b) == 0 {
			if x.period == int64(autoWeek) {
				// Then a week was held in autoSlots phases of 7 hours.
				for i := autoWeekSlots - 1; i >= 0; i-- {
					x.off[i], x.offN[i] = x.off[i/7], x.offN[i/7]
				}
			}
			return
		}
		wd := &x.week
		wd.day, wd.sum, wd.n = r.i64(), r.f64(), r.u32()
		if wd.day < 0 {
			r.fail("day %d before 1970", wd.day)
		}
		for k := range 7 {
			wd.s[k], wd.q[k], wd.c[k] = r.f64(), r.f64(), r.f64()
			if !(wd.c[k] >= 0 && wd.c[k] <= autoWeekDays) {
				r.fail("%v days of weekday %d (at most %d)", wd.c[k], k, autoWeekDays)
			}
		}
		if x.period == int64(autoWeek) {
			for i := autoSlots; i < autoWeekSlots; i++ {
				x.off[i], x.offN[i] = r.f32(), r.u16()
			}
			return
		}
		for i := range autoWeekSlots {
			x.hw[i], x.hwN[i] = r.f32(), r.u8()
			if x.hwN[i] > autoHourOfWeekN {
				r.fail("hour %d of the week: %d samples (at most %d)", i, x.hwN[i], autoHourOfWeekN)
			}
		}
	})
	if err == nil {
		*d = x
	}
	return err
}

// AppendState implements Stater.
func (d *Threshold) AppendState(dst []byte) []byte {
	w := beginState(dst, tagThreshold)
	w.u8(opCode(d.spec.Op))
	w.f64(d.spec.Value)
	w.f64(d.spec.clear())
	w.bool(d.firing)
	w.u64(d.ignored)
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *Threshold) LoadState(b []byte) error {
	x := *d
	err := load(b, "threshold", tagThreshold, func(r *stateDec) {
		r.same("op", uint64(r.u8()), uint64(opCode(x.spec.Op)))
		r.sameF("value", r.f64(), x.spec.Value)
		r.sameF("clear", r.f64(), x.spec.clear())
		x.firing, x.ignored = r.bool(), r.u64()
	})
	if err == nil {
		*d = x
	}
	return err
}

// autoMaxSpan bounds a restored Auto's period, and the span of its
// period finder's buffer, in ns.
const autoMaxSpan = 1 << 58

// opCode numbers the comparison operators for the state encoding.
func opCode(op Op) uint8 {
	switch op {
	case OpGT:
		return 1
	case OpGE:
		return 2
	case OpLT:
		return 3
	case OpLE:
		return 4
	}
	return 0
}

// AppendState implements Stater.
func (d *Absence) AppendState(dst []byte) []byte {
	w := beginState(dst, tagAbsence)
	w.i64(d.forNs)
	w.i64(d.last)
	w.bool(d.seen)
	w.u64(d.ignored)
	return w.end(len(dst))
}

// LoadState implements Stater.
func (d *Absence) LoadState(b []byte) error {
	x := *d
	err := load(b, "absence", tagAbsence, func(r *stateDec) {
		r.same("for", uint64(r.i64()), uint64(x.forNs))
		x.last, x.seen, x.ignored = r.i64(), r.bool(), r.u64()
	})
	if err == nil {
		*d = x
	}
	return err
}
