package lifecycle

import (
	"time"

	"github.com/mciv/mciv/detect"
	"github.com/mciv/mciv/rules"
)

// StepRule steps a, the alert of one group of rule r, at t on its
// detector's verdict res for value v over covered time d, as the
// analyzer, mciv replay and mciv eval all step it: the condition is the
// verdict, or for a rule with evidence whether ev is now enough
// (rules.Evidence.Condition); `for` counts from
// rules.Rule.ConditionSince.
func (a *Alert) StepRule(r *rules.Rule, ev *rules.EvidenceRun, t time.Time, d time.Duration, res detect.Result, v float64) Transition {
	active := r.Evidence.Condition(ev, a.State == Firing, res.Firing, d, v, res.Threshold, res.Baseline)
	return a.StepSince(t, r.ConditionSince(t, res.Lead), active, Timing{For: r.For, KeepFiringFor: r.KeepFiringFor})
}
