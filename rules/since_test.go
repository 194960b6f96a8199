package rules

import (
	"testing"
	"time"
)

// TestConditionSince: a rule's condition starts holding at the
// detector's lead before t, except for a rule with evidence, whose
// evidence run replaces `for` (the engine-level case is the default
// rules' test "a slow interval announced by the one before pages at
// once").
func TestConditionSince(t *testing.T) {
	g, err := Parse("r.yaml", []byte(`groups:
  - name: g
    rules:
      - alert: Plain
        signal: x
        stat: max
        detector: {type: auto}
        for: 5s
      - alert: WithEvidence
        signal: x
        stat: max
        detector: {type: threshold, op: ">", value: 5}
        evidence: {need: 1s, min: 500ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	rs := (&Set{Groups: g}).Rules()
	now := time.Unix(1000, 0)
	if got := rs[0].ConditionSince(now, time.Minute); !got.Equal(now.Add(-time.Minute)) {
		t.Errorf("plain rule: %v, want a minute before %v", got, now)
	}
	if got := rs[1].ConditionSince(now, time.Minute); !got.Equal(now) {
		t.Errorf("rule with evidence: %v, want %v", got, now)
	}
}
