package rules

import (
	"gopkg.in/yaml.v3"
)

// FailoverAction is a rule's request that a firing alert about a cluster's
// primary lead to a guarded switchover (analyzer/failover/actuator decides).
type FailoverAction struct {
	// When says which host the alert must be about; only "primary".
	When string
	// Approval waits for a human's approval (Slack button) before acting.
	Approval bool
	// DryRun decides and audits without acting.
	DryRun bool
}

// Action is one entry of a rule's actions list.
type Action struct {
	Failover *FailoverAction
	Pos      Pos
}

func actionKeys() []string   { return []string{"failover"} }
func failoverKeys() []string { return []string{"when", "approval", "dry_run"} }

// actions parses `actions: [{failover: {when: primary, approval: false, dry_run: false}}]`.
func (p *parser) actions(fs map[string]field, w where) []Action {
	f, ok := fs["actions"]
	if !ok || isNull(f.val) {
		return nil
	}
	if f.val.Kind != yaml.SequenceNode {
		p.errorf(f.val, w, "actions must be a list, not %s", kindName(f.val))
		return nil
	}
	var out []Action
	for _, item := range f.val.Content {
		item = resolve(item)
		afs := p.mapping(item, w, "action", actionKeys())
		if afs == nil {
			continue
		}
		if len(afs) == 0 {
			p.errorf(item, w, "action: empty (known: failover)")
			continue
		}
		a := Action{Pos: Pos{File: p.file, Line: item.Line, Col: item.Column}}
		if ff, ok := afs["failover"]; ok {
			a.Failover = p.failoverAction(ff.val, w)
		}
		if a.Failover != nil {
			out = append(out, a)
		}
	}
	return out
}

func (p *parser) failoverAction(n *yaml.Node, w where) *FailoverAction {
	fa := &FailoverAction{When: "primary"}
	if isNull(n) {
		return fa
	}
	fs := p.mapping(n, w, "failover", failoverKeys())
	if fs == nil {
		return nil
	}
	ok := true
	if v, at, given := p.str(fs, n, w, "when", false); given && v != "primary" {
		p.errorf(at, w, "failover: when %q: only \"primary\" is supported (the alert must be about the cluster's primary)", v)
		ok = false
	}
	for key, dst := range map[string]*bool{"approval": &fa.Approval, "dry_run": &fa.DryRun} {
		f, given := fs[key]
		if !given || isNull(f.val) {
			continue
		}
		if err := f.val.Decode(dst); err != nil || f.val.Tag != "!!bool" {
			p.errorf(f.val, w, "failover: %s must be true or false, not %q", key, f.val.Value)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return fa
}

// FailoverPolicy returns the rule's failover action, or nil.
func (r *Rule) FailoverPolicy() *FailoverAction {
	for _, a := range r.Actions {
		if a.Failover != nil {
			return a.Failover
		}
	}
	return nil
}
