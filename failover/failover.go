// Package failover defines how mciv asks a high-availability manager
// (Patroni, or anything behind a webhook or a command) to move a database
// primary, and what it learns back.
//
// A Driver does exactly one thing per call and never retries an action: it
// reads the topology, refuses when a local precondition does not hold (the
// cluster is paused, the candidate carries nofailover, the caller's view of
// the leader is stale, ...), sends one request carrying the caller's fencing
// token, and confirms the outcome by reading the topology again. Every call
// returns a Result fit for the audit trail, also when it returns an error;
// the error is a *Error whose kind (ErrPrecondition, ErrFailed,
// ErrUnknownOutcome, ...) tells the actuator what it may do next.
//
// The safeguards that decide whether to act at all (vantage points, the
// actuator lease, cooldown, dry run, audit) live above this package.
package failover

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Driver moves the primary of one database cluster.
//
// Implementations must be safe for concurrent use, must never send an
// action twice for one call, and must return a Result describing what was
// attempted even when they return an error.
type Driver interface {
	// Name identifies the driver in logs and audit records ("patroni").
	Name() string
	// Topology reads the cluster's members and whether it is paused. It is
	// safe to call at any time and may be retried by the caller.
	Topology(ctx context.Context) (Topology, error)
	// Switchover moves leadership gracefully from req.From (which must be the
	// current leader) to req.To. It is the action to prefer while the
	// primary still answers.
	Switchover(ctx context.Context, req Request) (Result, error)
	// Failover promotes req.To when the primary is confirmed dead
	// (req.PrimaryConfirmedDead) and the manager has not already acted.
	Failover(ctx context.Context, req Request) (Result, error)
}

// Action names what a driver was asked to do.
type Action string

// Actions a Driver performs.
const (
	ActionSwitchover Action = "switchover"
	ActionFailover   Action = "failover"
)

// Request asks a driver to move leadership.
type Request struct {
	// Cluster is the database cluster (Patroni scope) the caller means; a
	// driver configured for another cluster refuses.
	Cluster string `json:"cluster"`
	// From is the current leader as the caller saw it. Switchover requires
	// it; Failover uses it to check that the manager has not already moved
	// leadership elsewhere.
	From string `json:"from"`
	// To is the candidate to promote. Always required: drivers never let
	// the manager pick a node on their behalf.
	To string `json:"to"`
	// FencingToken is the revision of the actuator lease under which the
	// action is taken. It must be non-zero and never lower than a token the
	// same driver already used; it is sent with the request and recorded in
	// the Result.
	FencingToken uint64 `json:"fencing_token"`
	// Reason says why, for logs and the audit trail (e.g. the alert).
	Reason string `json:"reason,omitempty"`
	// PrimaryConfirmedDead is the caller's statement that the primary is
	// dead as seen from several vantage points. Failover refuses without it.
	PrimaryConfirmedDead bool `json:"primary_confirmed_dead,omitempty"`
	// MaxLagBytes, when positive, refuses a candidate whose replication lag
	// is unknown or larger.
	MaxLagBytes int64 `json:"max_lag_bytes,omitempty"`
}

// Validate checks the fields every action needs.
func (r Request) Validate(a Action) error {
	var missing []string
	if r.To == "" {
		missing = append(missing, "to")
	}
	if a == ActionSwitchover && r.From == "" {
		missing = append(missing, "from")
	}
	if r.FencingToken == 0 {
		missing = append(missing, "fencing_token")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s: missing %s", ErrInvalidRequest, a, strings.Join(missing, ", "))
	}
	if r.From == r.To {
		return fmt.Errorf("%w: %s: from and to are both %q", ErrInvalidRequest, a, r.To)
	}
	return nil
}

// Outcome classifies what happened to the cluster.
type Outcome string

// Outcomes of an action.
const (
	// OutcomeSucceeded: the candidate was confirmed leader and running.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeOtherLeader: leadership moved, but to another member.
	OutcomeOtherLeader Outcome = "other_leader"
	// OutcomeNotAttempted: nothing was sent or the manager refused before
	// acting (a precondition, authentication, a bad request, unreachable).
	OutcomeNotAttempted Outcome = "not_attempted"
	// OutcomeFailed: the manager tried and reports that leadership did not
	// move.
	OutcomeFailed Outcome = "failed"
	// OutcomeUnknown: the action may or may not have happened (a timeout
	// after sending, a lost connection, an unconfirmed success). Check the
	// topology; never resend blindly.
	OutcomeUnknown Outcome = "unknown"
)

// Result describes one call of Switchover or Failover for the audit trail.
type Result struct {
	Driver       string        `json:"driver"`
	Action       Action        `json:"action"`
	Cluster      string        `json:"cluster"`
	From         string        `json:"from,omitempty"`
	To           string        `json:"to"`
	FencingToken uint64        `json:"fencing_token"`
	Outcome      Outcome       `json:"outcome"`
	NewLeader    string        `json:"new_leader,omitempty"`
	Detail       string        `json:"detail,omitempty"`
	Sent         bool          `json:"sent"`
	StartedAt    time.Time     `json:"started_at"`
	Duration     time.Duration `json:"duration_ns"`
	// Before and After are the topologies read before sending and after the
	// outcome was settled (zero when they could not be read).
	Before Topology `json:"before"`
	After  Topology `json:"after"`
}
