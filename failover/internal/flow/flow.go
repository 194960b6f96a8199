// Package flow is the sequence every failover driver follows: validate,
// read the topology, refuse what failover.Precheck refuses, record the
// fencing token, send once, then settle the outcome by reading the
// topology again. Drivers supply only the reading and the sending.
package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mciv/mciv/failover"
)

// Answer is what a driver's single send learned.
type Answer struct {
	// Kind is nil when the manager reports the action done, else one of
	// failover's sentinels (ErrUnknownOutcome for anything ambiguous).
	Kind error
	// Sent is false only when the request certainly did not leave.
	Sent    bool
	Status  int    // HTTP status or exit code
	Message string // the manager's answer, trimmed
	// NewLeader is the leader the manager names in its answer, if any.
	NewLeader string
	Err       error // the cause, for errors
}

// Flow runs actions for one driver.
type Flow struct {
	Driver  string
	Cluster string // refuse requests for another cluster; empty accepts any
	// Topology reads the cluster; nil when the driver has no way to, in
	// which case prechecks are limited to the request and the outcome is
	// the manager's word.
	Topology       func(context.Context) (failover.Topology, error)
	ConfirmTimeout time.Duration
	PollInterval   time.Duration
	Log            *slog.Logger
	Tokens         *failover.TokenGuard
}

// Act runs action req; send is called at most once, with the topology read
// before (zero without a Topology func).
func (f *Flow) Act(ctx context.Context, action failover.Action, req failover.Request,
	send func(ctx context.Context, before failover.Topology) Answer) (failover.Result, error) {
	res := failover.Result{
		Driver: f.Driver, Action: action, Cluster: req.Cluster, From: req.From, To: req.To,
		FencingToken: req.FencingToken, Outcome: failover.OutcomeNotAttempted, StartedAt: time.Now(),
	}
	log := f.Log.With("action", string(action), "from", req.From, "to", req.To,
		"fencing_token", req.FencingToken, "reason", req.Reason)
	err := f.run(ctx, action, req, &res, log, send)
	res.Duration = time.Since(res.StartedAt)
	if err != nil {
		res.Outcome = failover.OutcomeOf(err)
		if res.Detail == "" {
			res.Detail = err.Error()
		} else {
			res.Detail += "; " + err.Error()
		}
		log.Warn("failover action not completed", "outcome", res.Outcome, "sent", res.Sent,
			"new_leader", res.NewLeader, "duration", res.Duration, "err", err)
		return res, err
	}
	res.Outcome = failover.OutcomeSucceeded
	log.Info("failover action confirmed", "new_leader", res.NewLeader, "duration", res.Duration, "detail", res.Detail)
	return res, nil
}

func (f *Flow) run(ctx context.Context, action failover.Action, req failover.Request, res *failover.Result,
	log *slog.Logger, send func(context.Context, failover.Topology) Answer) error {
	op := string(action)
	refuse := func(err error) error { return &failover.Error{Driver: f.Driver, Op: op, Err: err} }
	if err := req.Validate(action); err != nil {
		return refuse(err)
	}
	if f.Cluster != "" && req.Cluster != f.Cluster {
		return refuse(fmt.Errorf("%w: request for cluster %q sent to the driver of %q",
			failover.ErrInvalidRequest, req.Cluster, f.Cluster))
	}
	if action == failover.ActionFailover && !req.PrimaryConfirmedDead {
		return refuse(failover.Precheck(failover.Topology{}, action, req))
	}
	if f.Topology != nil {
		before, err := f.Topology(ctx)
		if err != nil {
			var fe *failover.Error
			if errors.As(err, &fe) {
				return err
			}
			return &failover.Error{Driver: f.Driver, Op: "topology", Kind: failover.ErrUnavailable, Err: err}
		}
		res.Before = before
		log.Debug("topology before", "topology", before.String(), "source", before.Source)
		if err := failover.Precheck(before, action, req); err != nil {
			return refuse(err)
		}
	}
	if err := f.Tokens.Use(req.FencingToken); err != nil {
		return refuse(err)
	}

	log.Info("failover action sending")
	ans := send(ctx, res.Before)
	res.Sent = ans.Sent
	res.Detail = ans.Message
	fe := &failover.Error{Driver: f.Driver, Op: op, Kind: ans.Kind, Status: ans.Status, Message: ans.Message,
		Sent: ans.Sent, Err: ans.Err}
	switch ans.Kind {
	case nil:
		if f.Topology != nil {
			return f.confirm(ctx, action, req, res, nil)
		}
		// No way to look: the manager's word is the outcome.
		res.NewLeader = ans.NewLeader
		if res.NewLeader == "" {
			res.NewLeader = req.To
		}
		if res.NewLeader != req.To {
			fe.Kind = failover.ErrUnexpectedLeader
			fe.Err = fmt.Errorf("manager reports leader %q, wanted %q", res.NewLeader, req.To)
			return fe
		}
		return nil
	case failover.ErrUnknownOutcome:
		if f.Topology != nil {
			return f.confirm(ctx, action, req, res, fe)
		}
	case failover.ErrFailed:
		if f.Topology != nil {
			if t, err := f.Topology(ctx); err == nil {
				res.After = t
				if l, ok := t.Leader(); ok {
					res.NewLeader = l.Name
				}
			}
		}
	}
	return fe
}

// confirm polls the topology until req.To leads and runs (nil), another
// member leads (ErrUnexpectedLeader), or ConfirmTimeout or ctx ends
// (ErrUnknownOutcome, carrying cause when the answer itself was ambiguous).
func (f *Flow) confirm(ctx context.Context, action failover.Action, req failover.Request, res *failover.Result,
	cause *failover.Error) error {
	var oldTL int64
	if l, ok := res.Before.Leader(); ok {
		oldTL = l.Timeline
	}
	cctx, cancel := context.WithTimeout(ctx, f.ConfirmTimeout)
	defer cancel()
	last, err := failover.WaitConfirmed(cctx, f.Topology, req, oldTL, f.PollInterval)
	if len(last.Members) > 0 {
		res.After = last
		if l, ok := last.Leader(); ok {
			res.NewLeader = l.Name
		}
	}
	op := string(action)
	switch {
	case err == nil:
		switch {
		case cause != nil:
			res.Detail = "confirmed by topology after an ambiguous answer: " + cause.Error()
		case res.Detail == "":
			res.Detail = "confirmed by topology"
		}
		return nil
	case errors.Is(err, failover.ErrUnexpectedLeader):
		return &failover.Error{Driver: f.Driver, Op: op, Kind: failover.ErrUnexpectedLeader, Sent: true, Err: err}
	}
	e := &failover.Error{Driver: f.Driver, Op: op, Kind: failover.ErrUnknownOutcome, Sent: true,
		Err: fmt.Errorf("not confirmed within %s (last topology: %s): %w", f.ConfirmTimeout, last.String(), err)}
	if errors.Is(err, context.DeadlineExceeded) {
		e.Err = fmt.Errorf("%w: %w", failover.ErrTimeout, e.Err)
	}
	if cause != nil {
		e.Status, e.Message, e.Err = cause.Status, cause.Message, errors.Join(cause.Err, e.Err)
	}
	return e
}
