package analyzer

import (
	"log/slog"
	"testing"
	"time"
)

func TestGrace(t *testing.T) {
	var g grace
	now := t0
	if g.active(now) {
		t.Fatal("active at start")
	}
	if !g.start(now, 10*time.Second) || !g.active(now.Add(9*time.Second)) || g.active(now.Add(10*time.Second)) {
		t.Fatal("a grace of 10s")
	}
	if g.start(now.Add(time.Second), 5*time.Second) {
		t.Fatal("a shorter grace inside a longer one started anew")
	}
	if g.watch(nil, now, time.Second) {
		t.Fatal("watch without a connection")
	}
}

// TestHoldAfterPause: a loop that ran late (the process starved or
// stopped) holds absence rules for the grace period; one on time does not.
func TestHoldAfterPause(t *testing.T) {
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	a := &Analyzer{cfg: Config{Now: func() time.Time { return now }, Fleet: FleetConfig{AbsenceGrace: 10 * time.Second}}, log: slog.New(slog.DiscardHandler)}
	fm, err := newFleetMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	a.fm = fm
	a.holdAfterPause(1100*time.Millisecond, time.Second)
	if a.grace.active(now) {
		t.Fatal("a tick on time held absence rules")
	}
	a.holdAfterPause(4*time.Second, time.Second)
	if !a.grace.active(now.Add(9*time.Second)) || a.grace.active(now.Add(11*time.Second)) {
		t.Fatal("a tick 4 s late did not hold absence rules for the grace period")
	}
}

// TestSilence: an input stream whose last sequence stops moving is
// silent from the next look on, for maxSilentHold at most; one that
// moves is not.
func TestSilence(t *testing.T) {
	var s silence
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	if s.observe(10, now) {
		t.Fatal("silent at the first look")
	}
	if s.observe(12, now.Add(time.Second)) {
		t.Fatal("silent while it stores")
	}
	if !s.observe(12, now.Add(1250*time.Millisecond)) {
		t.Fatal("not silent when nothing was stored since the last look")
	}
	if !s.observe(12, now.Add(time.Second+maxSilentHold-time.Millisecond)) {
		t.Fatal("not silent within maxSilentHold")
	}
	if s.observe(12, now.Add(time.Second+maxSilentHold)) {
		t.Fatal("still held after maxSilentHold: a fleet really gone would never be absent")
	}
}
