package detect

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
	"time"
)

// stateTypes are every detector type, with a config whose state is
// worth saving: short warm-ups so that N samples in, the baselines judge.
func stateTypes() []string { return append(statTypes(), "absence", "threshold") }

func stateConfig(typ string) Config {
	c := Default(typ)
	switch typ {
	case "threshold":
		c.Op, c.Value = OpGT, 104
		clr := 102.0
		c.Clear = &clr
	case "absence":
		c.For = 45 * time.Second
	case "seasonal":
		c.Slot, c.Period = time.Minute, 20*time.Minute
		c.Warmup = time.Minute
	case "rate_of_change":
		c.Window, c.Threshold, c.Warmup = 2*time.Minute, 0.04, time.Minute
	case "robust_zscore":
		c.Baseline, c.Warmup, c.Threshold = 20*time.Minute, time.Minute, 6
	default:
		c.Warmup = time.Minute
	}
	return c
}

// stateSeries is noise with spikes, a level shift, gaps and non-finite
// values: everything a detector's state must carry over.
func stateSeries(n int) []float64 {
	vs := noise(41, n, 100, 1)
	for i := range vs {
		switch {
		case i%97 == 50:
			vs[i] += 9
		case i%131 == 7:
			vs[i] = math.NaN()
		case i > n*2/3:
			vs[i] += 5
		}
	}
	return vs
}

// stateTime is the time of sample i: every 10 s, with a gap now and then.
func stateTime(i int) time.Time {
	return t0.Add(time.Duration(i)*10*time.Second + time.Duration(i/200)*5*time.Minute)
}

func sameResult(a, b Result) bool {
	return a.Firing == b.Firing && a.Kind == b.Kind && a.Lead == b.Lead &&
		math.Float64bits(a.Score) == math.Float64bits(b.Score) &&
		math.Float64bits(a.Threshold) == math.Float64bits(b.Threshold) &&
		math.Float64bits(a.Baseline) == math.Float64bits(b.Baseline)
}

// TestStateRoundTrip feeds N samples, saves the state, loads it into a
// fresh detector of the same spec and feeds M more to both: every verdict
// must be the same, for every cut.
func TestStateRoundTrip(t *testing.T) {
	const total = 1500
	vs := stateSeries(total)
	for _, typ := range stateTypes() {
		t.Run(typ, func(t *testing.T) {
			spec := mustSpec(t, stateConfig(typ))
			fired := 0
			for _, cut := range []int{0, 1, 5, 40, 300, 777, 1200} {
				orig := spec.New()
				for i := range vs[:cut] {
					orig.Observe(stateTime(i), vs[i])
				}
				st := orig.(Stater).AppendState([]byte("prefix"))
				restored := spec.New()
				if err := restored.(Stater).LoadState(st[len("prefix"):]); err != nil {
					t.Fatalf("cut %d: %v", cut, err)
				}
				differ := false
				for i := cut; i < total; i++ {
					at := stateTime(i)
					want, got := orig.Observe(at, vs[i]), restored.Observe(at, vs[i])
					if !sameResult(got, want) {
						t.Fatalf("cut %d, sample %d: restored %+v, original %+v", cut, i, got, want)
					}
					if tk, ok := orig.(Ticker); ok {
						later := at.Add(time.Minute)
						if w, g := tk.Tick(later), restored.(Ticker).Tick(later); !sameResult(g, w) {
							t.Fatalf("cut %d, tick %d: restored %+v, original %+v", cut, i, g, w)
						}
						fired++
					}
					if want.Firing {
						fired++
					}
				}
				// A fresh detector does not give the same verdicts right
				// after a late cut: the state is what carries them.
				if cut >= 300 && typ != "threshold" && typ != "absence" {
					fresh, ref := spec.New(), spec.New()
					_ = ref.(Stater).LoadState(st[len("prefix"):])
					for i := cut; i < cut+100 && !differ; i++ {
						differ = !sameResult(fresh.Observe(stateTime(i), vs[i]), ref.Observe(stateTime(i), vs[i]))
					}
					if !differ {
						t.Fatalf("cut %d: a fresh detector judges like the restored one", cut)
					}
				}
				if a, b := orig.(Stater).AppendState(nil), restored.(Stater).AppendState(nil); string(a) != string(b) {
					t.Fatalf("cut %d: states differ after the same samples", cut)
				}
			}
			if fired == 0 {
				t.Fatal("nothing fired: the test proves little")
			}
		})
	}
}

func TestStateRejectsBadInput(t *testing.T) {
	vs := stateSeries(400)
	for _, typ := range stateTypes() {
		t.Run(typ, func(t *testing.T) {
			spec := mustSpec(t, stateConfig(typ))
			d := spec.New()
			for i, v := range vs {
				d.Observe(stateTime(i), v)
			}
			good := d.(Stater).AppendState(nil)
			check := func(what string, b []byte, want error) {
				t.Helper()
				x := spec.New()
				before := x.(Stater).AppendState(nil)
				err := x.(Stater).LoadState(b)
				var se *StateError
				if !errors.Is(err, want) || !errors.As(err, &se) || se.Type != typ {
					t.Fatalf("%s: got %v, want %v", what, err, want)
				}
				if after := x.(Stater).AppendState(nil); string(after) != string(before) {
					t.Fatalf("%s: a failed load changed the detector", what)
				}
			}
			for n := range len(good) {
				check("truncated", good[:n], ErrStateCorrupt)
			}
			check("trailing byte", append(append([]byte(nil), good...), 0), ErrStateCorrupt)
			for i := range good {
				b := append([]byte(nil), good...)
				b[i] ^= 0x20
				want := ErrStateCorrupt
				if i == len(stateMagic) {
					want = ErrStateVersion
				}
				check("flipped byte", b, want)
			}
			// Another configuration of the same type.
			c := stateConfig(typ)
			switch typ {
			case "threshold":
				c.Value = 105
			case "absence":
				c.For = time.Minute
			case "rate_of_change":
				c.Window *= 2
			default:
				c.Threshold++
			}
			check("other config", mustSpec(t, c).New().(Stater).AppendState(nil), ErrStateMismatch)
			// Another type.
			other := "zscore"
			if typ == other {
				other = "ewma"
			}
			check("other type", mustSpec(t, stateConfig(other)).New().(Stater).AppendState(nil), ErrStateMismatch)
		})
	}
}

// FuzzLoadState: no input panics a load, and a detector that accepted an
// input still observes without panicking.
func FuzzLoadState(f *testing.F) {
	vs := stateSeries(300)
	for _, typ := range stateTypes() {
		d := mustSpec(f, stateConfig(typ)).New()
		for i, v := range vs {
			d.Observe(stateTime(i), v)
		}
		f.Add(d.(Stater).AppendState(nil))
	}
	specs := make([]Spec, 0, len(stateTypes()))
	for _, typ := range stateTypes() {
		specs = append(specs, mustSpec(f, stateConfig(typ)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range specs {
			d := s.New()
			if d.(Stater).LoadState(b) != nil {
				continue
			}
			for i := range 300 {
				d.Observe(stateTime(300+i), vs[i])
			}
		}
	})
}

// FuzzLoadStateResealed flips bytes of valid states and reseals their
// checksum, so that the fuzzer reaches the field checks.
func FuzzLoadStateResealed(f *testing.F) {
	vs := stateSeries(300)
	specs := make([]Spec, 0, len(stateTypes()))
	states := make([][]byte, 0, len(stateTypes()))
	for _, typ := range stateTypes() {
		s := mustSpec(f, stateConfig(typ))
		d := s.New()
		for i, v := range vs {
			d.Observe(stateTime(i), v)
		}
		specs, states = append(specs, s), append(states, d.(Stater).AppendState(nil))
	}
	f.Add(uint8(0), uint16(10), uint8(1), uint16(20), uint8(0xff))
	f.Fuzz(func(t *testing.T, which uint8, at1 uint16, x1 uint8, at2 uint16, x2 uint8) {
		k := int(which) % len(specs)
		b := append([]byte(nil), states[k]...)
		body := b[:len(b)-4]
		body[int(at1)%len(body)] ^= x1
		body[int(at2)%len(body)] ^= x2
		w := stateEnc{b: body}
		b = w.end(0)
		d := specs[k].New()
		if d.(Stater).LoadState(b) != nil {
			return
		}
		for i := range 300 {
			d.Observe(stateTime(300+i), vs[i])
		}
	})
}

func BenchmarkAppendState(b *testing.B) {
	vs := stateSeries(2000)
	for _, typ := range stateTypes() {
		b.Run(typ, func(b *testing.B) {
			d := mustSpec(b, stateConfig(typ)).New()
			for i, v := range vs {
				d.Observe(stateTime(i), v)
			}
			buf := d.(Stater).AppendState(nil)
			b.ReportAllocs()
			for b.Loop() {
				buf = d.(Stater).AppendState(buf[:0])
			}
			b.ReportMetric(float64(len(buf)), "state-bytes")
		})
	}
}

// TestAutoStateCarriesTheWeek: a state saved after auto took a week as
// its period (and its hours' offsets, weekdays' levels and hours' means)
// judges the next weeks as the original does.
func TestAutoStateCarriesTheWeek(t *testing.T) {
	step := time.Hour
	vs := weeklyLoad(63, 8, step, 0.8, 1)
	spec := mustSpec(t, Default("auto"))
	for _, cut := range []int{2*168 - 5, 4 * 168} { // before and after the week is adopted
		orig := spec.New().(*Auto)
		feed(orig, vs[:cut], step)
		restored := spec.New().(*Auto)
		if err := restored.LoadState(orig.AppendState(nil)); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		for i := cut; i < len(vs); i++ {
			at := t0.Add(time.Duration(i) * step)
			if want, got := orig.Observe(at, vs[i]), restored.Observe(at, vs[i]); !sameResult(got, want) {
				t.Fatalf("cut %d, sample %d: restored %+v, original %+v", cut, i, got, want)
			}
		}
		if restored.period != int64(autoWeek) {
			t.Fatalf("cut %d: period %v, want a week", cut, time.Duration(restored.period))
		}
	}
}

// TestAutoLoadsStateWithoutTheWeek: a state written before auto held
// weeks in their hours (it ends at the period finder's blocks) loads:
// with no week learnt, and a week it held in autoSlots phases of seven
// hours spread over the hours.
func TestAutoLoadsStateWithoutTheWeek(t *testing.T) {
	// The part of the encoding that the week added: the weekdays, and
	// a week's offsets beyond the first autoSlots or the hours' means.
	old := func(d *Auto) []byte {
		weekBytes := 8 + 8 + 4 + 7*3*8 + autoWeekSlots*5
		if d.period == int64(autoWeek) {
			weekBytes = 8 + 8 + 4 + 7*3*8 + (autoWeekSlots-autoSlots)*6
		}
		b := d.AppendState(nil)
		body := b[:len(b)-4-weekBytes]
		return binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, crcTable))
	}
	spec := mustSpec(t, Default("auto"))
	step := time.Hour
	vs := weeklyLoad(64, 3, step, 1, 1)
	orig := spec.New().(*Auto)
	feed(orig, vs, step)
	restored := spec.New().(*Auto)
	if err := restored.LoadState(old(orig)); err != nil {
		t.Fatalf("a state without the week: %v", err)
	}
	if restored.period != orig.period || restored.mu != orig.mu || restored.hwN != [autoWeekSlots]uint8{} || restored.week != (weekdays{}) {
		t.Fatalf("restored period %v, baseline %v, hours learnt %v: want %v, %v, none",
			time.Duration(restored.period), restored.mu, restored.hwN[0], time.Duration(orig.period), orig.mu)
	}
	// A week in 24 phases of seven hours.
	wk := spec.New().(*Auto)
	feed(wk, vs[:100], step)
	wk.period = int64(autoWeek)
	for i := range autoSlots {
		wk.off[i], wk.offN[i] = float32(i), MinSamples
	}
	restored = spec.New().(*Auto)
	if err := restored.LoadState(old(wk)); err != nil {
		t.Fatalf("a week in 24 phases: %v", err)
	}
	for h := range autoWeekSlots {
		if restored.off[h] != float32(h/7) || restored.offN[h] != MinSamples {
			t.Fatalf("hour %d of the week: offset %v (%d samples), want %d", h, restored.off[h], restored.offN[h], h/7)
		}
	}
}
