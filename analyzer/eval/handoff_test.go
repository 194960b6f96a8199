package eval

import (
	"slices"

	"github.com/mciv/mciv/internal/wire"
	"testing"
)

// TestHandoff moves a host from one engine to another in the middle of a
// firing alert: the second engine, given a replay of the same batches
// (announcements ignored) and then the first one's snapshot, announces
// the resolution once and nothing else.
func TestHandoff(t *testing.T) {
	set := mustRules(t, tcpRule)
	a := New(set, Options{})
	var bs []*wire.Batch
	for seq := range 25 {
		v := 0.0
		if seq >= 5 && seq < 15 {
			v = 10
		}
		bs = append(bs, batch("h", seq, retrans(v, "")))
	}
	got := feed(t, a, bs[:10]...)
	if !slices.Equal(got, []string{"8:firing:h"}) {
		t.Fatalf("first owner: %v", got)
	}
	all := func(string, string) bool { return true }
	states, marks := a.Snapshot(all)
	if len(states) != 1 || len(marks) != 1 || marks[0].Seq != 9 {
		t.Fatalf("snapshot: %+v %+v", states, marks)
	}

	b := New(set, Options{})
	// The replay starts late, in the anomaly: its own lifecycle would
	// fire later; the overlay sets the first owner's.
	_ = feed(t, b, bs[7:10]...)
	if n := b.Overlay(all, states, marks); n != 1 {
		t.Fatalf("overlay set %d groups", n)
	}
	if c := b.Active(); c[0].Firing != 1 || c[0].Pending != 0 {
		t.Fatalf("active after overlay: %+v", c)
	}
	got = feed(t, b, bs[10:]...)
	if len(got) != 1 || got[0][len(got[0])-len("resolved:h"):] != "resolved:h" {
		t.Fatalf("second owner: %v", got)
	}
	rep, err := b.Eval(batch("h", 30, retrans(0, "")), t0)
	if err != nil || rep.Missed != 5 {
		t.Fatalf("gap: missed %d, err %v", rep.Missed, err)
	}
	if n := b.Forget(func(_, h string) bool { return h == "h" }); n != 1 {
		t.Fatalf("forgot %d hosts", n)
	}
	if c := b.Active(); c[0].Firing != 0 {
		t.Fatalf("active after forget: %+v", c)
	}
	if st, mk := b.Snapshot(all); len(st)+len(mk) != 0 {
		t.Fatalf("snapshot after forget: %v %v", st, mk)
	}
}

// TestOverlayInactivates: a group the replay left pending or firing but
// the snapshot does not hold becomes inactive.
func TestOverlayInactivates(t *testing.T) {
	set := mustRules(t, tcpRule)
	e := New(set, Options{})
	for seq := range 6 {
		feed(t, e, batch("h", seq, retrans(10, "")))
	}
	if c := e.Active(); c[0].Firing != 1 {
		t.Fatalf("not firing: %+v", c)
	}
	e.Overlay(func(string, string) bool { return true }, nil, nil)
	if c := e.Active(); c[0].Firing+c[0].Pending != 0 {
		t.Fatalf("after empty overlay: %+v", c)
	}
}
