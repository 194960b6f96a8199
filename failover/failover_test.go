package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestErrorKinds(t *testing.T) {
	for _, k := range []error{ErrPaused, ErrLeaderMismatch, ErrCandidateIneligible, ErrPrimaryAlive, ErrStaleFencingToken} {
		if !errors.Is(k, ErrPrecondition) {
			t.Errorf("%v is not a precondition error", k)
		}
	}
	cause := fmt.Errorf("POST x: %w", ErrTimeout)
	err := fmt.Errorf("actuator: %w", &Error{Driver: "patroni", Op: "switchover", Kind: ErrUnknownOutcome, Sent: true, Err: cause})
	if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, ErrTimeout) || errors.Is(err, ErrPrecondition) {
		t.Fatalf("errors.Is through *Error failed: %v", err)
	}
	var fe *Error
	if !errors.As(err, &fe) || !fe.Sent {
		t.Fatalf("errors.As: %v", err)
	}
	e := &Error{Driver: "patroni", Op: "switchover", Kind: ErrLeaderMismatch, Status: 412, Message: "leader name does not match"}
	if got, want := e.Error(), "patroni switchover: leader does not match: status 412: leader name does not match"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Outcome
	}{
		{nil, OutcomeSucceeded},
		{&Error{Kind: ErrPaused}, OutcomeNotAttempted},
		{&Error{Kind: ErrAuth}, OutcomeNotAttempted},
		{&Error{Kind: ErrUnavailable}, OutcomeNotAttempted},
		{&Error{Kind: ErrRejected}, OutcomeNotAttempted},
		{&Error{Err: fmt.Errorf("%w: x", ErrInvalidRequest)}, OutcomeNotAttempted},
		{&Error{Kind: ErrFailed}, OutcomeFailed},
		{&Error{Kind: ErrUnexpectedLeader}, OutcomeOtherLeader},
		{&Error{Kind: ErrUnknownOutcome, Err: ErrTimeout}, OutcomeUnknown},
		{errors.New("something nobody classified"), OutcomeUnknown},
	} {
		if got := OutcomeOf(tc.err); got != tc.want {
			t.Errorf("OutcomeOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestRequestValidate(t *testing.T) {
	ok := Request{Cluster: "c", From: "a", To: "b", FencingToken: 1}
	if err := ok.Validate(ActionSwitchover); err != nil {
		t.Fatal(err)
	}
	noFrom := ok
	noFrom.From = ""
	if err := noFrom.Validate(ActionFailover); err != nil {
		t.Fatalf("failover without from: %v", err)
	}
	for name, r := range map[string]Request{
		"no from":  noFrom,
		"no to":    {From: "a", FencingToken: 1},
		"no token": {From: "a", To: "b"},
		"same":     {From: "a", To: "a", FencingToken: 1},
	} {
		if err := r.Validate(ActionSwitchover); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", name, err)
		}
	}
}

func TestCheckCandidate(t *testing.T) {
	top := Topology{Members: []Member{
		{Name: "a", Role: RoleLeader, State: StateRunning, Timeline: 5},
		{Name: "b", Role: RoleReplica, State: StateStreaming, Timeline: 5, LagBytes: 10},
		{Name: "c", Role: RoleSyncStandby, State: StateRunning, Timeline: 5, LagBytes: LagUnknown},
		{Name: "d", Role: RoleReplica, State: StateRunning, Timeline: 5, NoFailover: true},
		{Name: "e", Role: RoleReplica, State: "stopped", Timeline: 5},
		{Name: "f", Role: RoleReplica, State: StateRunning, Timeline: 4},
	}}
	for _, tc := range []struct {
		name   string
		maxLag int64
		ok     bool
		why    string
	}{
		{"b", 0, true, ""},
		{"b", 10, true, ""},
		{"b", 9, false, "lags"},
		{"c", 0, true, ""},
		{"c", 1 << 20, false, "unknown lag"},
		{"a", 0, false, "leader lock"},
		{"d", 0, false, "nofailover"},
		{"e", 0, false, "stopped"},
		{"f", 0, false, "timeline"},
		{"z", 0, false, "not a member"},
	} {
		err := top.CheckCandidate(tc.name, tc.maxLag)
		if tc.ok != (err == nil) || (err != nil && (!errors.Is(err, ErrCandidateIneligible) || !strings.Contains(err.Error(), tc.why))) {
			t.Errorf("CheckCandidate(%s, %d) = %v", tc.name, tc.maxLag, err)
		}
	}
}

func TestTagTrue(t *testing.T) {
	for v, want := range map[any]bool{true: true, false: false, "true": true, "True": true, "yes": true, "on": true,
		"1": true, "false": false, "no": false, "": false, 1.0: true, 0.0: false} {
		if got := TagTrue(v); got != want {
			t.Errorf("TagTrue(%#v) = %v, want %v", v, got, want)
		}
	}
	if TagTrue(nil) {
		t.Error("TagTrue(nil)")
	}
}

func labTopology() Topology {
	return Topology{Members: []Member{
		{Name: "a", Role: RoleLeader, State: StateRunning, Timeline: 5},
		{Name: "b", Role: RoleReplica, State: StateStreaming, Timeline: 5},
	}}
}

func TestPrecheck(t *testing.T) {
	sw := Request{From: "a", To: "b", FencingToken: 1}
	fo := Request{From: "a", To: "b", FencingToken: 1, PrimaryConfirmedDead: true}
	paused := labTopology()
	paused.Paused = true
	deadLeader := labTopology()
	deadLeader.Members[0].State = "stopped"
	noLeader := labTopology()
	noLeader.Members[0].Role = RoleReplica
	moved := labTopology()
	moved.Members[0].Role, moved.Members[1].Role = RoleReplica, RoleLeader
	for _, tc := range []struct {
		name string
		t    Topology
		a    Action
		r    Request
		want error
	}{
		{"switchover ok", labTopology(), ActionSwitchover, sw, nil},
		{"paused", paused, ActionSwitchover, sw, ErrPaused},
		{"switchover, no leader", noLeader, ActionSwitchover, sw, ErrLeaderMismatch},
		{"switchover, leader moved", moved, ActionSwitchover, sw, ErrLeaderMismatch},
		{"failover, not confirmed", noLeader, ActionFailover, sw, ErrPrimaryAlive},
		{"failover, leader running", labTopology(), ActionFailover, fo, ErrPrimaryAlive},
		{"failover, leader stopped", deadLeader, ActionFailover, fo, nil},
		{"failover, no leader", noLeader, ActionFailover, fo, nil},
		{"failover, manager acted", moved, ActionFailover, Request{From: "a", To: "c", FencingToken: 1, PrimaryConfirmedDead: true}, ErrLeaderMismatch},
		{"failover, paused", paused, ActionFailover, fo, ErrPaused},
		{"unknown action", labTopology(), Action("reboot"), sw, ErrInvalidRequest},
	} {
		err := Precheck(tc.t, tc.a, tc.r)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestConfirmed(t *testing.T) {
	req := Request{From: "a", To: "b"}
	moved := labTopology()
	moved.Members[0].Role, moved.Members[1].Role = RoleReplica, RoleLeader
	if done, err := Confirmed(labTopology(), req, 5); done || err != nil {
		t.Fatalf("before: %v %v", done, err)
	}
	if done, err := Confirmed(moved, req, 5); done || err != nil {
		t.Fatalf("same timeline must not confirm: %v %v", done, err)
	}
	moved.Members[1].Timeline = 6
	if done, err := Confirmed(moved, req, 5); !done || err != nil {
		t.Fatalf("after: %v %v", done, err)
	}
	if _, err := Confirmed(moved, Request{From: "a", To: "c"}, 5); !errors.Is(err, ErrUnexpectedLeader) {
		t.Fatalf("other leader: %v", err)
	}
}

func TestWaitConfirmed(t *testing.T) {
	req := Request{From: "a", To: "b"}
	reads := 0
	read := func(context.Context) (Topology, error) {
		reads++
		switch reads {
		case 1:
			return Topology{}, errors.New("connection refused")
		case 2:
			return labTopology(), nil
		}
		t := labTopology()
		t.Members[0].Role, t.Members[1].Role, t.Members[1].Timeline = RoleReplica, RoleLeader, 6
		return t, nil
	}
	last, err := WaitConfirmed(context.Background(), read, req, 5, time.Millisecond)
	if err != nil || reads != 3 {
		t.Fatalf("err = %v after %d reads", err, reads)
	}
	if l, _ := last.Leader(); l.Name != "b" {
		t.Fatalf("last leader %q", l.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	never := func(context.Context) (Topology, error) { return Topology{}, errors.New("down") }
	if _, err := WaitConfirmed(ctx, never, req, 5, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "down") {
		t.Fatalf("err = %v, want deadline with the last read error", err)
	}
}

func TestTokenGuard(t *testing.T) {
	var g TokenGuard
	for _, tok := range []uint64{3, 3, 7} {
		if err := g.Use(tok); err != nil {
			t.Fatalf("Use(%d): %v", tok, err)
		}
	}
	if err := g.Use(6); !errors.Is(err, ErrStaleFencingToken) {
		t.Fatalf("Use(6) = %v", err)
	}
}
