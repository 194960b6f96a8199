package phone

import (
	"context"
	"testing"
)

func TestParseKey(t *testing.T) {
	for in, want := range map[string]Key{"": KeyNone, "1": KeyAcknowledge, "2": KeyResolve, "3": KeySilence, "9": KeyNone, "1#": KeyAcknowledge, "*": KeyNone} {
		if got := ParseKey(in); got != want {
			t.Errorf("ParseKey(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	for _, s := range []Status{StatusCompleted, StatusBusy, StatusNoAnswer, StatusFailed, StatusCanceled} {
		if !s.Final() {
			t.Errorf("%s is final", s)
		}
	}
	for _, s := range []Status{StatusQueued, StatusRinging, StatusInProgress} {
		if s.Final() {
			t.Errorf("%s is not final", s)
		}
	}
	if !StatusInProgress.Answered() || StatusNoAnswer.Answered() {
		t.Error("Answered")
	}
}

func TestEventHandlerFunc(t *testing.T) {
	var got Event
	h := EventHandlerFunc(func(_ context.Context, ev Event) Reply { got = ev; return Reply{Say: "ok"} })
	r := h.HandleCallEvent(t.Context(), Event{Kind: EventDigits, CallID: "CA1", Digits: "1"})
	if r.Say != "ok" || got.CallID != "CA1" {
		t.Fatalf("reply %v, event %v", r, got)
	}
	if s := got.String(); s != `call CA1: digits "1"` {
		t.Errorf("String = %q", s)
	}
	if s := (Event{Kind: EventStatus, CallID: "CA1", Status: StatusNoAnswer}).String(); s != "call CA1: no-answer" {
		t.Errorf("String = %q", s)
	}
}
