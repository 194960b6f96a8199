package rules

import (
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/detect"
)

const stepRules = `groups:
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
`

func stepRuleSet(t *testing.T) []*Rule {
	t.Helper()
	g, err := Parse("r.yaml", []byte(stepRules))
	if err != nil {
		t.Fatal(err)
	}
	return (&Set{Groups: g}).Rules()
}

// TestConditionSince: a rule's condition starts holding at the
// detector's lead before t, except for a rule with evidence, whose
// evidence run replaces `for` (the engine-level case is the default
// rules' test "a slow interval announced by the one before pages at
// once").
func TestConditionSince(t *testing.T) {
	rs := stepRuleSet(t)
	now := time.Unix(1000, 0)
	if got := rs[0].ConditionSince(now, time.Minute); !got.Equal(now.Add(-time.Minute)) {
		t.Errorf("plain rule: %v, want a minute before %v", got, now)
	}
	if got := rs[1].ConditionSince(now, time.Minute); !got.Equal(now) {
		t.Errorf("rule with evidence: %v, want %v", got, now)
	}
}

// TestStep: a rule without evidence fires once its detector's verdict,
// counted from the verdict's lead, has held for `for`; a rule with
// evidence fires once its evidence run is enough, whatever the lead.
func TestStep(t *testing.T) {
	rs := stepRuleSet(t)
	now := time.Unix(1000, 0)
	firing := detect.Result{Firing: true, Threshold: 5}

	var plain lifecycle.Alert
	var ev EvidenceRun
	if tr := rs[0].Step(&plain, &ev, now, time.Second, firing, 6); tr != lifecycle.Pended {
		t.Errorf("plain rule without a lead: %v, want pending", tr)
	}
	var led lifecycle.Alert
	withLead := firing
	withLead.Lead = 5 * time.Second
	if tr := rs[0].Step(&led, &ev, now, time.Second, withLead, 6); tr != lifecycle.Fired {
		t.Errorf("plain rule with a lead as long as for: %v, want fired", tr)
	}

	// Evidence {need: 1s, min: 500ms}: a 1 s batch at 6 (weight 1.2) is
	// enough weight but has not persisted; the next one has.
	var life lifecycle.Alert
	ev = EvidenceRun{}
	if tr := rs[1].Step(&life, &ev, now, time.Second, withLead, 6); tr != lifecycle.None {
		t.Errorf("evidence, first batch: %v, want none (the lead does not count)", tr)
	}
	if tr := rs[1].Step(&life, &ev, now.Add(time.Second), time.Second, withLead, 6); tr != lifecycle.Fired {
		t.Errorf("evidence, second batch: %v, want fired", tr)
	}
	// Once firing it follows the detector (no keep_firing_for here).
	if tr := rs[1].Step(&life, &ev, now.Add(2*time.Second), time.Second, detect.Result{}, 1); tr != lifecycle.Resolved {
		t.Errorf("evidence, quiet batch: %v, want resolved", tr)
	}
}
