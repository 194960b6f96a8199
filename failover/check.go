package failover

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Precheck returns the local reason to refuse action req on topology t, or
// nil. The error wraps ErrPaused, ErrLeaderMismatch, ErrPrimaryAlive or
// ErrCandidateIneligible (all ErrPrecondition). Drivers call it after
// Request.Validate and before sending anything:
//
//   - a paused cluster is hands off;
//   - a switchover needs req.From to hold the leader lock;
//   - a failover needs req.PrimaryConfirmedDead, and refuses when another
//     member already leads (the manager acted) or when req.From still holds
//     the lock and reports running (use a switchover);
//   - the candidate must pass CheckCandidate(req.To, req.MaxLagBytes).
func Precheck(t Topology, a Action, req Request) error {
	if t.Paused {
		return fmt.Errorf("%w: the manager reports pause", ErrPaused)
	}
	leader, ok := t.Leader()
	switch a {
	case ActionSwitchover:
		if !ok {
			return fmt.Errorf("%w: no member holds the leader lock; a switchover needs one", ErrLeaderMismatch)
		}
		if leader.Name != req.From {
			return fmt.Errorf("%w: leader is %q, not %q", ErrLeaderMismatch, leader.Name, req.From)
		}
	case ActionFailover:
		if !req.PrimaryConfirmedDead {
			return fmt.Errorf("%w: failover needs PrimaryConfirmedDead; prefer a switchover", ErrPrimaryAlive)
		}
		if ok && leader.Name != req.From {
			return fmt.Errorf("%w: leadership already moved to %q", ErrLeaderMismatch, leader.Name)
		}
		if ok && leader.Running() {
			return fmt.Errorf("%w: leader %q holds the lock and reports %q; use a switchover",
				ErrPrimaryAlive, leader.Name, leader.State)
		}
	default:
		return fmt.Errorf("%w: unknown action %q", ErrInvalidRequest, a)
	}
	return t.CheckCandidate(req.To, req.MaxLagBytes)
}

// Confirmed reports how t settles req: done (req.To leads, runs, and is on
// a newer timeline than oldTimeline when both are known), or another member
// leads and runs (ErrUnexpectedLeader), or neither yet (false, nil).
func Confirmed(t Topology, req Request, oldTimeline int64) (bool, error) {
	l, ok := t.Leader()
	if !ok || !l.Running() {
		return false, nil
	}
	switch {
	case l.Name == req.To:
		return oldTimeline == 0 || l.Timeline == 0 || l.Timeline > oldTimeline, nil
	case l.Name != req.From:
		return false, fmt.Errorf("%w: leader is %q, wanted %q", ErrUnexpectedLeader, l.Name, req.To)
	}
	return false, nil
}

// WaitConfirmed reads the topology every interval until Confirmed settles
// req or ctx ends. It returns the last topology read, nil on success, the
// ErrUnexpectedLeader error, or ctx's error joined with the last read
// error.
func WaitConfirmed(ctx context.Context, read func(context.Context) (Topology, error), req Request,
	oldTimeline int64, interval time.Duration) (Topology, error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last Topology
	var lastErr error
	for {
		t, err := read(ctx)
		if err == nil {
			last, lastErr = t, nil
			done, err := Confirmed(t, req, oldTimeline)
			if done || err != nil {
				return last, err
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, fmt.Errorf("%w (last read: %w)", ctx.Err(), lastErr)
			}
			return last, ctx.Err()
		case <-tick.C:
		}
	}
}

// TokenGuard refuses fencing tokens older than the newest one it saw. A
// driver holds one, so that two actions racing inside one process cannot
// act under a superseded lease. The zero value is ready.
type TokenGuard struct {
	mu   sync.Mutex
	last uint64
}

// Use records token, or returns ErrStaleFencingToken if a newer one was used.
func (g *TokenGuard) Use(token uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if token < g.last {
		return fmt.Errorf("%w: token %d is older than %d already used", ErrStaleFencingToken, token, g.last)
	}
	g.last = token
	return nil
}
