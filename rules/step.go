package rules

import (
	"time"

	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/detect"
)

// Step steps the alert life of one group of rule r at t on its
// detector's verdict res for value v over covered time d, as the
// analyzer, mciv replay and mciv eval all step it: the condition is the
// verdict, or for a rule with evidence whether ev is now enough
// (Evidence.Condition); `for` counts from ConditionSince.
func (r *Rule) Step(life *lifecycle.Alert, ev *EvidenceRun, t time.Time, d time.Duration, res detect.Result, v float64) lifecycle.Transition {
	active := r.Evidence.Condition(ev, life.State == lifecycle.Firing, res.Firing, d, v, res.Threshold, res.Baseline)
	return life.StepSince(t, r.ConditionSince(t, res.Lead), active, lifecycle.Timing{For: r.For, KeepFiringFor: r.KeepFiringFor})
}

// ConditionSince is when rule r's condition, found holding at t by a
// detector that judged it under way for lead already
// (detect.Result.Lead), started holding: what the alert's `for` counts
// from (lifecycle.Alert.StepSince). It is t for a rule with evidence,
// whose evidence run replaces `for`.
func (r *Rule) ConditionSince(t time.Time, lead time.Duration) time.Time {
	if r.Evidence != nil {
		return t
	}
	return t.Add(-lead)
}
