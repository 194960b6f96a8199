package rules

import "time"

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
