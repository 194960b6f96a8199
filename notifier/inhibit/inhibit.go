// Package inhibit mutes alerts that other alerts make redundant, after
// Alertmanager's inhibition rules: while an alert matching a rule's source
// matchers fires, alerts matching its target matchers that have the same
// values of the rule's equal labels are not notified (by default: a
// critical alert mutes the warnings of the same host). It also holds the
// Muter, which applies silences and inhibition before delivery.
package inhibit

import (
	"context"
	"errors"
	"fmt"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/route"
	"github.com/mciv/mciv/notifier/silence"
	"gopkg.in/yaml.v3"
)

// Rule is one inhibition rule.
type Rule struct {
	SourceMatchers labels.Matchers
	TargetMatchers labels.Matchers
	Equal          []string
}

// DefaultRules are used when none are configured: a critical alert
// inhibits the warnings of the same host.
var DefaultRules = []Rule{{
	SourceMatchers: labels.Matchers{labels.MustParse("severity=critical")},
	TargetMatchers: labels.Matchers{labels.MustParse("severity=warning")},
	Equal:          []string{"host"},
}}

// UnmarshalYAML decodes a rule strictly, with file positions in errors.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	f, err := route.Fields(n, "inhibit rule", "source_matchers", "target_matchers", "equal")
	if err != nil {
		return err
	}
	*r = Rule{}
	src, tgt := f["source_matchers"], f["target_matchers"]
	if src == nil || tgt == nil {
		return route.Errorf(n, "inhibit rule: source_matchers and target_matchers are required")
	}
	if r.SourceMatchers, err = route.Matchers(src, "inhibit rule.source_matchers"); err != nil {
		return err
	}
	if r.TargetMatchers, err = route.Matchers(tgt, "inhibit rule.target_matchers"); err != nil {
		return err
	}
	if len(r.SourceMatchers) == 0 || len(r.TargetMatchers) == 0 {
		return route.Errorf(n, "inhibit rule: source_matchers and target_matchers must not be empty")
	}
	if v := f["equal"]; v != nil {
		if r.Equal, err = route.Strings(v, "inhibit rule.equal"); err != nil {
			return err
		}
	}
	return nil
}

// Inhibits reports whether source, firing, mutes target under r.
func (r Rule) Inhibits(source, target map[string]string) bool {
	if !r.TargetMatchers.Matches(target) || !r.SourceMatchers.Matches(source) {
		return false
	}
	// An alert that matches both sides does not mute others of its kind.
	if r.TargetMatchers.Matches(source) && r.SourceMatchers.Matches(target) {
		return false
	}
	for _, l := range r.Equal {
		if source[l] != target[l] {
			return false
		}
	}
	return true
}

// Muter decides whether an alert is muted, by a silence or by inhibition.
// It records every alert it is asked about, so that inhibition sees every
// firing alert across notifier replicas.
type Muter struct {
	rules    []Rule
	silences *silence.Store
	log      *nflog.Log
}

// NewMuter returns a muter; nil rules means DefaultRules (pass an empty,
// non-nil slice for none); silences may be nil.
func NewMuter(rules []Rule, silences *silence.Store, log *nflog.Log) *Muter {
	if rules == nil {
		rules = DefaultRules
	}
	return &Muter{rules: rules, silences: silences, log: log}
}

// Mute records a and returns why it must not be notified ("" when it must
// be). Resolved alerts are never muted: a message that said firing must be
// able to say resolved.
//
// A bucket that cannot be read or written (a full store, say) does not
// stop the decision: Mute goes on with what it can check and returns the
// failures, each a *bus.StoreError naming its bucket, beside the reason.
// An alert it could not check is thus delivered rather than dropped
// (fail open); a silence found is still honoured.
func (m *Muter) Mute(ctx context.Context, a *wire.Alert) (string, error) {
	var errs []error
	if err := m.log.RecordAlert(ctx, a); err != nil {
		errs = append(errs, bus.NewStoreError(nflog.Bucket, bus.OpWrite, err))
	}
	if a.State != wire.StateFiring {
		return "", errors.Join(errs...)
	}
	ls := labels.Of(a)
	if m.silences != nil {
		s, err := m.silences.Silenced(ctx, ls)
		if err != nil {
			errs = append(errs, bus.NewStoreError(silence.Bucket, bus.OpRead, err))
		}
		if s != nil {
			return "silenced by " + s.ID, errors.Join(errs...)
		}
	}
	if len(m.rules) == 0 {
		return "", errors.Join(errs...)
	}
	firing, err := m.log.FiringAlerts(ctx)
	if err != nil {
		errs = append(errs, bus.NewStoreError(nflog.Bucket, bus.OpRead, err))
	}
	for _, src := range firing {
		if src.Fingerprint == a.Fingerprint {
			continue
		}
		sl := labels.Of(src)
		for _, r := range m.rules {
			if r.Inhibits(sl, ls) {
				return fmt.Sprintf("inhibited by %s (%s)", src.Rule, src.Fingerprint), errors.Join(errs...)
			}
		}
	}
	return "", errors.Join(errs...)
}
