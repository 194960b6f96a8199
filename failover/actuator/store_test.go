package actuator

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStore(t *testing.T) {
	_, js := startNATS(t)
	ctx := context.Background()
	s, err := OpenStore(ctx, js, "storetest", time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Pause.
	if p, err := s.Paused(ctx); err != nil || p.Paused {
		t.Fatalf("fresh store paused=%v err=%v", p.Paused, err)
	}
	if err := s.SetPaused(ctx, PauseInfo{Paused: true, By: "bob"}); err != nil {
		t.Fatal(err)
	}
	state, err := OpenState(ctx, js, "storetest")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := state.Paused(ctx); err != nil || !p.Paused || p.By != "bob" {
		t.Fatalf("pause seen by another opener: %+v %v", p, err)
	}
	// Lease: one holder at a time; revisions increase.
	r1, err := s.Acquire(ctx, "c", LeaseInfo{Holder: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "c", LeaseInfo{Holder: "b"}); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second acquire: %v", err)
	}
	if err := s.Verify(ctx, "c", r1); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, "c", r1+100); err == nil {
		t.Fatal("released with a wrong revision")
	}
	if err := s.Release(ctx, "c", r1); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, "c", r1); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("verify after release: %v", err)
	}
	r2, err := s.Acquire(ctx, "c", LeaseInfo{Holder: "b"})
	if err != nil || r2 <= r1 {
		t.Fatalf("re-acquire rev %d (first %d): %v", r2, r1, err)
	}
	// Cooldown: created once.
	until := time.Now().Add(time.Hour)
	rev, err := s.StartCooldown(ctx, "c", CooldownInfo{Until: until, FencingToken: r2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartCooldown(ctx, "c", CooldownInfo{Until: until}, 0); err == nil {
		t.Fatal("a second cooldown was created")
	}
	cd, got, err := s.Cooldown(ctx, "c")
	if err != nil || got != rev || cd.FencingToken != r2 {
		t.Fatalf("cooldown %+v rev %d err %v", cd, got, err)
	}
	if err := s.ClearCooldown(ctx, "c", rev); err != nil {
		t.Fatal(err)
	}
	if _, got, _ := s.Cooldown(ctx, "c"); got != 0 {
		t.Fatalf("cooldown still there (rev %d)", got)
	}
}
