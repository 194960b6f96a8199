package detect

import (
	"math"
	"testing"
	"time"
)

func TestAbsence(t *testing.T) {
	d := mustSpec(t, Config{Type: "absence", For: time.Minute}).New().(*Absence)
	var tk Ticker = d
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	if r := tk.Tick(at(0)); r.Firing || r.Score != 0 {
		t.Fatalf("fired before any sample: %+v", r)
	}
	for s := 0; s < 60; s += 10 {
		if r := d.Observe(at(s), 1); r.Firing {
			t.Fatalf("fired on a sample: %+v", r)
		}
	}
	steps := []struct {
		s      int
		nan    bool
		firing bool
		score  float64
	}{
		{70, false, false, 0.25}, // 20 s silent
		{100, true, false, 0},    // NaN is no sample
		{110, false, true, 0.5},
		{200, false, true, 150.0 / 210},
	}
	for _, st := range steps {
		var r Result
		if st.nan {
			r = d.Observe(at(st.s), math.NaN())
			if r.Firing {
				t.Fatalf("%ds: %+v", st.s, r)
			}
			continue
		}
		r = tk.Tick(at(st.s))
		if r.Firing != st.firing || math.Abs(r.Score-st.score) > 1e-9 || r.Threshold != 60 {
			t.Fatalf("%ds: %+v, want firing %v score %v", st.s, r, st.firing, st.score)
		}
	}
	if d.Ignored() != 1 {
		t.Fatalf("ignored %d", d.Ignored())
	}
	if r := d.Observe(at(210), 5); r.Firing {
		t.Fatalf("a sample did not clear: %+v", r)
	}
	if r := tk.Tick(at(215)); r.Firing {
		t.Fatalf("fired 5 s after a sample: %+v", r)
	}
}
