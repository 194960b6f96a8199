// Package lifecycle is the state machine of one alert (one rule and one
// label set): inactive → pending while its detector fires → firing once it
// has fired for the rule's `for` → back to inactive (resolved) once the
// detector has been quiet for the rule's `keep_firing_for`. It is pure: the
// caller passes the time of every step, so the same input always gives the
// same transitions at the same times.
//
// The semantics follow Prometheus alerting rules: a pending alert whose
// condition clears goes back to inactive at once (keep_firing_for applies to
// firing alerts only), `for: 0` fires on the first anomalous step, and
// keep_firing_for counts from the first quiet step.
package lifecycle

import (
	"fmt"
	"time"
)

// State is where an alert is in its lifecycle.
type State uint8

// Alert states.
const (
	Inactive State = iota
	Pending
	Firing
)

// String names the state.
func (s State) String() string {
	switch s {
	case Inactive:
		return "inactive"
	case Pending:
		return "pending"
	case Firing:
		return "firing"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Transition is what a step changed.
type Transition uint8

// Transitions. Only Fired and Resolved are announced to the outside world.
const (
	None      Transition = iota
	Pended               // inactive → pending
	Cancelled            // pending → inactive: the condition cleared before `for`
	Fired                // pending or inactive → firing
	Resolved             // firing → inactive
)

// String names the transition.
func (t Transition) String() string {
	switch t {
	case None:
		return "none"
	case Pended:
		return "pended"
	case Cancelled:
		return "cancelled"
	case Fired:
		return "fired"
	case Resolved:
		return "resolved"
	}
	return fmt.Sprintf("transition(%d)", uint8(t))
}

// Timing is the rule's hysteresis.
type Timing struct {
	// For is how long the condition must hold before the alert fires.
	For time.Duration
	// KeepFiringFor is how long a firing alert stays firing after the
	// condition cleared.
	KeepFiringFor time.Duration
}

// Alert is the lifecycle of one alert. The zero value is inactive.
type Alert struct {
	State State
	// ActiveAt is when the condition started holding (pending or firing).
	ActiveAt time.Time
	// FiredAt is when the alert started firing (its StartsAt).
	FiredAt time.Time
	// QuietSince is the first quiet step of a firing alert, zero while
	// the condition holds.
	QuietSince time.Time
	// ResolvedAt is when the alert last resolved.
	ResolvedAt time.Time
	// SuppressUntil, set when a person resolved the alert (Resolve), is
	// the end of the rule's keep_firing_for window from then: until it
	// the alert does not go pending or fire again, however anomalous.
	SuppressUntil time.Time `json:",omitzero"`
}

// Resolve ends a firing alert at now because a person declared it over:
// it goes inactive (Resolved) and stays so for the rule's keep_firing_for
// window, after which it fires again if the condition still holds. An
// alert that is not firing is left alone (None).
func (a *Alert) Resolve(now time.Time, tm Timing) Transition {
	if a.State != Firing {
		return None
	}
	a.State, a.ResolvedAt = Inactive, now
	a.ActiveAt, a.QuietSince = time.Time{}, time.Time{}
	a.SuppressUntil = now.Add(tm.KeepFiringFor)
	return Resolved
}

// Step advances the alert to time now, given whether the condition holds
// (the detector fires) at now. Steps must come in time order; a step dated
// before the previous one is treated as happening at the same time.
func (a *Alert) Step(now time.Time, active bool, tm Timing) Transition {
	return a.StepSince(now, now, active, tm)
}

// StepSince is Step for a condition that, when it starts holding at now,
// has already held since since according to its detector (one that
// judged an earlier sample part of the same anomaly: see
// detect.Result.Lead): `for` then counts from since. A since that is zero
// or after now means now; since matters only when the alert goes from
// inactive to pending or firing.
func (a *Alert) StepSince(now, since time.Time, active bool, tm Timing) Transition {
	switch a.State {
	case Inactive:
		if !active || now.Before(a.SuppressUntil) {
			return None
		}
		if since.IsZero() || since.After(now) {
			since = now
		}
		a.ActiveAt, a.QuietSince = since, time.Time{}
		if tm.For <= 0 || now.Sub(since) >= tm.For {
			a.State, a.FiredAt = Firing, now
			return Fired
		}
		a.State = Pending
		return Pended
	case Pending:
		if !active {
			a.State, a.ActiveAt = Inactive, time.Time{}
			return Cancelled
		}
		if now.Sub(a.ActiveAt) >= tm.For {
			a.State, a.FiredAt = Firing, now
			return Fired
		}
		return None
	case Firing:
		if active {
			a.QuietSince = time.Time{}
			return None
		}
		if a.QuietSince.IsZero() {
			a.QuietSince = now
		}
		if now.Sub(a.QuietSince) >= tm.KeepFiringFor {
			a.State, a.ResolvedAt = Inactive, now
			a.ActiveAt, a.QuietSince = time.Time{}, time.Time{}
			return Resolved
		}
		return None
	}
	return None
}
