package lifecycle

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// run steps an alert once per second through pattern ('1' = condition
// holds, '0' = quiet) and returns the transitions as "t=N:name" strings.
func run(pattern string, tm Timing) (string, *Alert) {
	var a Alert
	t0 := time.Unix(1000, 0)
	var out []string
	for i, c := range pattern {
		if tr := a.Step(t0.Add(time.Duration(i)*time.Second), c == '1', tm); tr != None {
			out = append(out, fmt.Sprintf("t=%d:%s", i, tr))
		}
	}
	return strings.Join(out, " "), &a
}

func TestStep(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pattern string
		tm      Timing
		want    string
		end     State
	}{
		{"quiet", "0000", Timing{For: 3 * time.Second}, "", Inactive},
		{"blip shorter than for", "01100", Timing{For: 3 * time.Second}, "t=1:pended t=3:cancelled", Inactive},
		{"fires after for", "011110", Timing{For: 3 * time.Second},
			"t=1:pended t=4:fired t=5:resolved", Inactive},
		{"for zero fires at once", "0100", Timing{}, "t=1:fired t=2:resolved", Inactive},
		{"keep firing holds through a dip", "1111011100000000", Timing{For: 3 * time.Second, KeepFiringFor: 5 * time.Second},
			"t=0:pended t=3:fired t=13:resolved", Inactive},
		{"keep firing restarts counting after a new anomaly", "11110000100000", Timing{For: time.Second, KeepFiringFor: 3 * time.Second},
			"t=0:pended t=1:fired t=7:resolved t=8:pended t=9:cancelled", Inactive},
		{"still firing", "1111", Timing{For: 2 * time.Second, KeepFiringFor: time.Minute}, "t=0:pended t=2:fired", Firing},
		{"refires after resolve", "1010", Timing{}, "t=0:fired t=1:resolved t=2:fired t=3:resolved", Inactive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, a := run(tc.pattern, tc.tm)
			if got != tc.want || a.State != tc.end {
				t.Fatalf("got %q ending %v, want %q ending %v", got, a.State, tc.want, tc.end)
			}
		})
	}
}

func TestTimestamps(t *testing.T) {
	var a Alert
	tm := Timing{For: 2 * time.Second, KeepFiringFor: time.Second}
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	a.Step(at(10), true, tm)
	a.Step(at(11), true, tm)
	if tr := a.Step(at(12), true, tm); tr != Fired || !a.FiredAt.Equal(at(12)) || !a.ActiveAt.Equal(at(10)) {
		t.Fatalf("got %v %+v", tr, a)
	}
	a.Step(at(13), false, tm)
	if !a.QuietSince.Equal(at(13)) {
		t.Fatalf("quiet since %v", a.QuietSince)
	}
	if tr := a.Step(at(14), false, tm); tr != Resolved || !a.ResolvedAt.Equal(at(14)) || !a.FiredAt.Equal(at(12)) {
		t.Fatalf("got %v %+v", tr, a)
	}
	// An out-of-order step does not fire early or resolve late.
	var b Alert
	b.Step(at(20), true, tm)
	if tr := b.Step(at(19), true, tm); tr != None {
		t.Fatalf("step back in time: %v", tr)
	}
}

func TestStrings(t *testing.T) {
	if Firing.String() != "firing" || Resolved.String() != "resolved" || State(9).String() != "state(9)" {
		t.Fatal("String")
	}
}

func TestResolveHoldsForKeepFiringFor(t *testing.T) {
	tm := Timing{For: 0, KeepFiringFor: 5 * time.Second}
	var a Alert
	at := func(s int) time.Time { return time.Unix(1000+int64(s), 0) }
	if tr := a.Step(at(0), true, tm); tr != Fired {
		t.Fatalf("step 0: %v", tr)
	}
	if tr := a.Resolve(at(1), tm); tr != Resolved || a.State != Inactive {
		t.Fatalf("resolve: %v %v", tr, a.State)
	}
	if tr := a.Resolve(at(1), tm); tr != None {
		t.Fatalf("resolving twice: %v", tr)
	}
	for s := 2; s < 6; s++ { // the condition persists within keep_firing_for
		if tr := a.Step(at(s), true, tm); tr != None {
			t.Fatalf("step %d within the window: %v", s, tr)
		}
	}
	if tr := a.Step(at(6), true, tm); tr != Fired { // and past it
		t.Fatalf("step 6 past the window: %v", tr)
	}
}

// TestStepSince: `for` counts from since when the condition starts
// holding (the detector's lead), only then, and never from a time after
// now.
func TestStepSince(t *testing.T) {
	tm := Timing{For: 5 * time.Second, KeepFiringFor: time.Minute}
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	for _, tc := range []struct {
		name    string
		since   time.Time
		want    Transition
		wantAct time.Time
	}{
		{"a lead of a minute covers for", at(40), Fired, at(40)},
		{"a lead as long as for covers it", at(95), Fired, at(95)},
		{"a shorter lead leaves it pending", at(98), Pended, at(98)},
		{"no lead", at(100), Pended, at(100)},
		{"zero since means now", time.Time{}, Pended, at(100)},
		{"a since after now means now", at(130), Pended, at(100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Alert
			if tr := a.StepSince(at(100), tc.since, true, tm); tr != tc.want || !a.ActiveAt.Equal(tc.wantAct) {
				t.Fatalf("got %v active at %v, want %v at %v", tr, a.ActiveAt, tc.want, tc.wantAct)
			}
		})
	}
	// A pending alert keeps its start: a later lead does not move it.
	var a Alert
	a.StepSince(at(100), at(99), true, tm)
	if tr := a.StepSince(at(101), at(0), true, tm); tr != None || !a.ActiveAt.Equal(at(99)) {
		t.Fatalf("pending: got %v active at %v, want none at 99", tr, a.ActiveAt)
	}
	if tr := a.StepSince(at(104), at(104), true, tm); tr != Fired {
		t.Fatalf("pending: got %v at 104 (5 s after 99), want fired", tr)
	}
	// A quiet step is quiet whatever the lead.
	var q Alert
	if tr := q.StepSince(at(100), at(0), false, tm); tr != None || q.State != Inactive {
		t.Fatalf("quiet: got %v %v", tr, q.State)
	}
}
