// Package phone places phone calls that speak an alert and ask the person
// who answers to press a key: 1 acknowledge, 2 resolve, 3 silence for an
// hour. Providers live in subpackages (notifier/phone/twilio first) and
// implement the one [Provider] interface; the escalation engine
// (notifier/escalation) decides whom to call and handles the answers that
// providers report as [Event]s through an [EventHandler].
package phone

import (
	"context"
	"fmt"
	"time"
)

// CallID identifies a call at its provider (a Twilio Call SID).
type CallID string

// Provider places calls.
type Provider interface {
	// Name identifies the provider in logs ("twilio").
	Name() string
	// Call places a call and returns once the provider has accepted it
	// (the phone may not ring yet). Its progress and the key pressed
	// arrive later as Events.
	Call(ctx context.Context, req CallRequest) (CallID, error)
}

// CallRequest is one call to place.
type CallRequest struct {
	// To is the number to call, in E.164 ("+15551230001").
	To string
	// AudioURL is a clip the provider plays (fetched by the provider, so
	// it must be reachable from the internet); when empty Say is spoken by
	// the provider's own text-to-speech.
	AudioURL string
	// Say is the text of the alert.
	Say string
	// Gather asks for a key after the alert is spoken; nil only speaks.
	Gather *Gather
	// StatusCallbackURL receives the call's progress (ringing, answered,
	// completed, no-answer, busy, failed); empty: none.
	StatusCallbackURL string
}

// Gather asks for one key.
type Gather struct {
	// ActionURL receives the key pressed.
	ActionURL string
	// Prompt is said after the alert ("Press 1 to acknowledge, ...").
	Prompt string
	// Timeout is how long to wait for a key; 0 means 10s.
	Timeout time.Duration
	// NoInput is said when no key was pressed.
	NoInput string
}

// DefaultPrompt is the menu said after the alert.
const DefaultPrompt = "Press 1 to acknowledge. Press 2 to resolve. Press 3 to silence this alert for one hour."

// DefaultNoInput is said when nobody pressed a key.
const DefaultNoInput = "No key was pressed. The escalation continues. Goodbye."

// Status is the state of a call, as the providers report it.
type Status string

// Call states (Twilio's names, which other providers map to).
const (
	StatusQueued     Status = "queued"
	StatusInitiated  Status = "initiated"
	StatusRinging    Status = "ringing"
	StatusInProgress Status = "in-progress"
	StatusCompleted  Status = "completed"
	StatusBusy       Status = "busy"
	StatusNoAnswer   Status = "no-answer"
	StatusFailed     Status = "failed"
	StatusCanceled   Status = "canceled"
)

// Final reports whether the call is over.
func (s Status) Final() bool {
	switch s {
	case StatusCompleted, StatusBusy, StatusNoAnswer, StatusFailed, StatusCanceled:
		return true
	}
	return false
}

// Answered reports whether somebody picked up (as far as the status tells).
func (s Status) Answered() bool { return s == StatusInProgress || s == StatusCompleted }

// EventKind tells what an Event reports.
type EventKind string

// Event kinds.
const (
	// EventStatus is a change of the call's status.
	EventStatus EventKind = "status"
	// EventDigits is the answer to a Gather: Digits holds the key(s)
	// pressed, empty when none was.
	EventDigits EventKind = "digits"
)

// Event is what a provider learned about a call, from a verified callback.
type Event struct {
	Kind   EventKind
	CallID CallID
	Status Status
	Digits string
	To     string
	// Duration is the call's duration, for a final status.
	Duration time.Duration
}

// String describes the event for logs.
func (e Event) String() string {
	if e.Kind == EventDigits {
		return fmt.Sprintf("call %s: digits %q", e.CallID, e.Digits)
	}
	return fmt.Sprintf("call %s: %s", e.CallID, e.Status)
}

// Reply is what the caller hears after pressing a key.
type Reply struct {
	// Say is spoken before the call ends; empty says nothing.
	Say string
}

// EventHandler handles the events of calls (the escalation engine).
type EventHandler interface {
	// HandleCallEvent is called once per verified callback; for
	// EventDigits the Reply is spoken to the caller.
	HandleCallEvent(ctx context.Context, ev Event) Reply
}

// EventHandlerFunc adapts a function to EventHandler.
type EventHandlerFunc func(ctx context.Context, ev Event) Reply

// HandleCallEvent calls f.
func (f EventHandlerFunc) HandleCallEvent(ctx context.Context, ev Event) Reply { return f(ctx, ev) }

// Key is what a pressed key asks for.
type Key int

// The menu's keys.
const (
	KeyNone Key = iota
	KeyAcknowledge
	KeyResolve
	KeySilence
)

// ParseKey reads the first key of digits: "1" acknowledge, "2" resolve,
// "3" silence; anything else is KeyNone.
func ParseKey(digits string) Key {
	if digits == "" {
		return KeyNone
	}
	switch digits[0] {
	case '1':
		return KeyAcknowledge
	case '2':
		return KeyResolve
	case '3':
		return KeySilence
	}
	return KeyNone
}
