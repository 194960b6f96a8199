package latbench

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeLab stands in for NetLab: every switch of the loss makes the
// reactors deliver notifications, as the systems under test would.
type fakeLab struct {
	mu       sync.Mutex
	on       bool
	onCalls  int
	reactors []func(on bool)
}

func (f *fakeLab) SetLoss(_ context.Context, percent int) error {
	f.mu.Lock()
	on := percent > 0
	changed := on != f.on
	f.on = on
	if on {
		f.onCalls++
	}
	rs := f.reactors
	f.mu.Unlock()
	if changed {
		for _, r := range rs {
			r(on)
		}
	}
	return nil
}

func (f *fakeLab) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.onCalls
}

// react returns a reactor that adds a firing note to feed delay after the
// loss starts (if fire) and a resolved note delay after it stops.
func react(feed *Feed, fire bool, delay time.Duration) func(bool) {
	return func(on bool) {
		if on && !fire {
			return
		}
		time.AfterFunc(delay, func() { feed.Add(Note{At: time.Now(), Firing: on}) })
	}
}

func TestRunMeasuresEachSystem(t *testing.T) {
	fast, slow, deaf, part, stage := NewFeed(), NewFeed(), NewFeed(), NewFeed(), NewFeed()
	lab := &fakeLab{}
	lab.reactors = []func(bool){react(fast, true, 20*time.Millisecond), react(slow, true, 150*time.Millisecond),
		react(deaf, false, 0), react(part, true, 20*time.Millisecond),
		func(on bool) {
			if on {
				stage.Add(Note{At: time.Now(), Firing: true})
			}
		}}
	systems := []*System{
		{Name: "fast", Feed: fast, FireTimeout: 2 * time.Second, ResolveTimeout: 2 * time.Second, Faults: 3, Explain: stage},
		{Name: "slow", Feed: slow, FireTimeout: 2 * time.Second, ResolveTimeout: 2 * time.Second, Faults: 3},
		{Name: "deaf", Feed: deaf, FireTimeout: 50 * time.Millisecond, ResolveTimeout: time.Second, Faults: 3},
		{Name: "part", Feed: part, FireTimeout: 2 * time.Second, ResolveTimeout: 2 * time.Second, Faults: 2},
		// A stage is timed like a system but has no resolve to wait for
		// (its feed never gets one: a wait would take ResolveTimeout).
		{Name: "stage", Feed: stage, FireTimeout: 2 * time.Second, ResolveTimeout: time.Hour, Faults: 3, Stage: true},
	}
	var locks, unlocks int
	var losses []string
	res, err := Run(context.Background(), Options{
		OnLoss: func(what string, on, off time.Time) {
			if off.Before(on) {
				t.Errorf("%s: off %v before on %v", what, off, on)
			}
			losses = append(losses, what)
		},
		Lab: lab, Systems: systems, Gap: 10 * time.Millisecond,
		Quiet: 300 * time.Millisecond, BlipMin: 40 * time.Millisecond, BlipMax: 80 * time.Millisecond,
		BlipLength: 10 * time.Millisecond, QuietTail: 400 * time.Millisecond, Seed: 1,
		Lock: func(context.Context) (func(), error) { locks++; return func() { unlocks++ }, nil },
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res[0].Latencies); got != 3 || res[0].Missed != 0 {
		t.Errorf("fast: %d latencies, %d missed; want 3, 0", got, res[0].Missed)
	}
	if got := len(res[3].Latencies); got != 2 || res[3].Missed != 0 {
		t.Errorf("part took part in %d faults (%d missed), want 2", got, res[3].Missed)
	}
	for _, d := range res[1].Latencies {
		if d < 150*time.Millisecond {
			t.Errorf("slow measured %s, before its notification could arrive", d)
		}
	}
	if s0, s1 := Summarize(res[0].Latencies), Summarize(res[1].Latencies); s0.Median >= s1.Median {
		t.Errorf("fast median %s not below slow median %s", s0.Median, s1.Median)
	}
	if res[2].Missed != 3 || len(res[2].Latencies) != 0 {
		t.Errorf("deaf: %d missed, %d latencies; want 3, 0", res[2].Missed, len(res[2].Latencies))
	}
	blips := lab.calls() - 3
	if blips < 1 {
		t.Fatalf("no blip in the quiet period")
	}
	// The fast and slow systems page on every loss, blips included; the
	// deaf one never.
	if res[0].QuietAlerts != blips || res[1].QuietAlerts != blips || res[2].QuietAlerts != 0 || res[3].QuietAlerts != blips {
		t.Errorf("quiet alerts %d, %d, %d, %d; want %d, %d, 0, %d", res[0].QuietAlerts, res[1].QuietAlerts, res[2].QuietAlerts, res[3].QuietAlerts, blips, blips, blips)
	}
	if len(res[0].QuietNotes) != blips || len(res[2].QuietNotes) != 0 || res[0].QuietFrom.IsZero() {
		t.Errorf("quiet notes: fast %d, deaf %d, from %v; want %d, 0, set", len(res[0].QuietNotes), len(res[2].QuietNotes), res[0].QuietFrom, blips)
	}
	for _, n := range res[0].QuietNotes {
		if !n.Firing || n.At.Before(res[0].QuietFrom) {
			t.Errorf("quiet note %+v: not a firing one of the quiet period (from %v)", n, res[0].QuietFrom)
		}
	}
	// The stage feed explains the fast system: one note per blip.
	if len(res[0].QuietExplain) != blips || res[1].QuietExplain != nil {
		t.Errorf("explained: fast %d, slow %d; want %d, none", len(res[0].QuietExplain), len(res[1].QuietExplain), blips)
	}
	if len(losses) != 3+blips || losses[0] != "fault 1" || losses[3] != "blip 1" {
		t.Errorf("losses reported: %v, want 3 faults and %d blips", losses, blips)
	}
	if locks != unlocks || locks != 3+blips {
		t.Errorf("lock taken %d times, released %d, want %d", locks, unlocks, 3+blips)
	}
	if len(res[4].Latencies) != 3 || res[4].QuietAlerts != -1 {
		t.Errorf("stage: %d latencies, quiet %d; want 3, -1 (not counted)", len(res[4].Latencies), res[4].QuietAlerts)
	}
	lab.mu.Lock()
	defer lab.mu.Unlock()
	if lab.on {
		t.Error("the loss is still on after Run")
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	lab := &fakeLab{}
	lab.reactors = []func(bool){func(on bool) {
		if on {
			cancel()
		}
	}}
	_, err := Run(ctx, Options{Lab: lab, Systems: []*System{{Name: "x", Feed: NewFeed(), FireTimeout: time.Minute, ResolveTimeout: time.Minute, Faults: 5}}})
	if err == nil {
		t.Fatal("Run returned no error after its context ended")
	}
	if lab.calls() != 1 || lab.on {
		t.Errorf("after cancel: %d faults started, loss on=%v; want 1, off", lab.calls(), lab.on)
	}
}

// TestRunJittersTheGap: with GapJitter the faults do not start at a fixed
// time after the last resolve (which a polling system's cycle sets), and
// each gap stays within [Gap, Gap+GapJitter).
func TestRunJittersTheGap(t *testing.T) {
	feed := NewFeed()
	lab := &fakeLab{}
	lab.reactors = []func(bool){react(feed, true, 5*time.Millisecond)}
	var ons, offs []time.Time
	const gap, jitter = 20 * time.Millisecond, 400 * time.Millisecond
	_, err := Run(context.Background(), Options{
		Lab: lab, Systems: []*System{{Name: "s", Feed: feed, FireTimeout: 2 * time.Second, ResolveTimeout: 2 * time.Second, Faults: 5}},
		Gap: gap, GapJitter: jitter, Seed: 7, Logf: t.Logf,
		OnLoss: func(_ string, on, off time.Time) { ons, offs = append(ons, on), append(offs, off) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ons) != 5 {
		t.Fatalf("%d faults, want 5", len(ons))
	}
	lo, hi := time.Hour, time.Duration(0)
	for i := 1; i < len(ons); i++ {
		// The resolve comes 5 ms after the loss ends; then the gap.
		g := ons[i].Sub(offs[i-1])
		if g < gap || g > gap+jitter+200*time.Millisecond {
			t.Errorf("gap %d: %s, want within [%s, %s) and scheduling slack", i, g, gap, gap+jitter)
		}
		lo, hi = min(lo, g), max(hi, g)
	}
	if hi-lo < 100*time.Millisecond {
		t.Errorf("gaps from %s to %s: the faults start at nearly the same phase", lo, hi)
	}
}
