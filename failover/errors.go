package failover

import (
	"errors"
	"fmt"
	"strings"
)

// kind is a sentinel error that may refine a broader one, so that
// errors.Is(ErrPaused, ErrPrecondition) holds.
type kind struct {
	msg    string
	parent error
}

func (k *kind) Error() string { return k.msg }
func (k *kind) Unwrap() error { return k.parent }

// Sentinel errors. Test them with errors.Is; a driver returns them inside a
// *Error. What the actuator may do next differs for each:
var (
	// ErrInvalidRequest: the request lacks a field or names another cluster.
	// A bug in the caller; nothing was sent.
	ErrInvalidRequest = errors.New("invalid failover request")

	// ErrPrecondition: the action was not performed because a precondition
	// did not hold, checked locally or by the manager (Patroni's 412).
	// Nothing changed; re-read the topology before deciding again.
	ErrPrecondition = errors.New("precondition failed")
	// ErrPaused: the cluster is in maintenance mode (Patroni pause). Hands off.
	ErrPaused error = &kind{"cluster is paused", ErrPrecondition}
	// ErrLeaderMismatch: Request.From is not the current leader (or there is
	// no leader for a switchover, or leadership already moved for a
	// failover).
	ErrLeaderMismatch error = &kind{"leader does not match", ErrPrecondition}
	// ErrCandidateIneligible: the candidate is missing, tagged nofailover,
	// not running, lagging, on an old timeline, or the manager found no
	// good candidate.
	ErrCandidateIneligible error = &kind{"candidate is not eligible", ErrPrecondition}
	// ErrPrimaryAlive: Failover was called without PrimaryConfirmedDead, or
	// the manager still sees the primary running with the lock.
	ErrPrimaryAlive error = &kind{"primary is not confirmed dead", ErrPrecondition}
	// ErrStaleFencingToken: the token is lower than one this driver already
	// used: another actuator holds the lease now.
	ErrStaleFencingToken error = &kind{"stale fencing token", ErrPrecondition}

	// ErrAuth: the manager refused our credentials (HTTP 401 or 403).
	// Nothing changed; retrying will not help until the config is fixed.
	ErrAuth = errors.New("not authorized by the failover manager")
	// ErrRejected: the manager rejected the request as malformed (400, 411,
	// 422, other 4xx). Nothing changed; a bug on our side.
	ErrRejected = errors.New("request rejected by the failover manager")
	// ErrUnavailable: the manager could not be reached and the request was
	// not sent (connection refused, DNS, TLS handshake). Nothing changed.
	ErrUnavailable = errors.New("failover manager unavailable")
	// ErrFailed: the manager tried and reports that leadership did not move
	// (Patroni 503 "Switchover failed", DCS write failed).
	ErrFailed = errors.New("failover action failed")
	// ErrUnknownOutcome: the action may have happened: a timeout or lost
	// connection after sending, a 503 "status unknown", a success that the
	// topology did not confirm in time. Check the topology; never resend.
	ErrUnknownOutcome = errors.New("failover outcome unknown")
	// ErrUnexpectedLeader: leadership moved, but not to the candidate.
	ErrUnexpectedLeader = errors.New("another member became leader")
	// ErrTimeout accompanies a timeout; with ErrUnknownOutcome when the
	// request had been sent.
	ErrTimeout = errors.New("timed out")
)

// Error is the error every driver returns. Kind is one of the sentinels
// above and Err the underlying cause, both reachable with errors.Is and
// errors.As.
type Error struct {
	Driver string
	Op     string // "switchover", "failover", "topology"
	Kind   error
	// Status is the manager's HTTP status or a command's exit code, 0 when
	// there was no answer.
	Status int
	// Message is the manager's answer text, trimmed.
	Message string
	// Sent reports whether the request may have reached the manager.
	Sent bool
	Err  error
}

// Error renders "patroni switchover: precondition failed: HTTP 412: leader
// name does not match: <cause>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Driver)
	if e.Op != "" {
		b.WriteByte(' ')
		b.WriteString(e.Op)
	}
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(e.Kind.Error())
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause.
func (e *Error) Unwrap() []error {
	out := make([]error, 0, 2)
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// OutcomeOf maps an error returned by a driver to the outcome it implies
// (OutcomeSucceeded for nil, OutcomeUnknown for an unclassified error).
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeSucceeded
	case errors.Is(err, ErrUnknownOutcome):
		return OutcomeUnknown
	case errors.Is(err, ErrUnexpectedLeader):
		return OutcomeOtherLeader
	case errors.Is(err, ErrFailed):
		return OutcomeFailed
	case errors.Is(err, ErrPrecondition), errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrAuth),
		errors.Is(err, ErrRejected), errors.Is(err, ErrUnavailable):
		return OutcomeNotAttempted
	default:
		// An error nobody classified: assume the worst.
		return OutcomeUnknown
	}
}
