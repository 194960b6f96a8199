package lifecycle

import (
	"testing"
	"time"

	"github.com/mciv/mciv/detect"
	"github.com/mciv/mciv/rules"
)

// ruleSet is a rule without evidence (auto, for: 5s) and one with
// evidence ({need: 1s, min: 500ms} on a threshold of 5).
func ruleSet(t *testing.T) []*rules.Rule {
	t.Helper()
	g, err := rules.Parse("r.yaml", []byte(`groups:
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
	return (&rules.Set{Groups: g}).Rules()
}

// TestStepRule: a rule without evidence fires once its detector's verdict,
// counted from the verdict's lead, has held for `for`; a rule with
// evidence fires once its evidence run is enough, whatever the lead.
func TestStepRule(t *testing.T) {
	rs := ruleSet(t)
	now := time.Unix(1000, 0)
	firing := detect.Result{Firing: true, Threshold: 5}

	var plain Alert
	var ev rules.EvidenceRun
	if tr := plain.StepRule(rs[0], &ev, now, time.Second, firing, 6); tr != Pended {
		t.Errorf("plain rule without a lead: %v, want pending", tr)
	}
	var led Alert
	withLead := firing
	withLead.Lead = 5 * time.Second
	if tr := led.StepRule(rs[0], &ev, now, time.Second, withLead, 6); tr != Fired {
		t.Errorf("plain rule with a lead as long as for: %v, want fired", tr)
	}

	// Evidence {need: 1s, min: 500ms}: a 1 s batch at 6 (weight 1.2) is
	// enough weight but has not persisted; the next one has.
	var life Alert
	ev = rules.EvidenceRun{}
	if tr := life.StepRule(rs[1], &ev, now, time.Second, withLead, 6); tr != None {
		t.Errorf("evidence, first batch: %v, want none (the lead does not count)", tr)
	}
	if tr := life.StepRule(rs[1], &ev, now.Add(time.Second), time.Second, withLead, 6); tr != Fired {
		t.Errorf("evidence, second batch: %v, want fired", tr)
	}
	// Once firing it follows the detector (no keep_firing_for here).
	if tr := life.StepRule(rs[1], &ev, now.Add(2*time.Second), time.Second, detect.Result{}, 1); tr != Resolved {
		t.Errorf("evidence, quiet batch: %v, want resolved", tr)
	}
}
