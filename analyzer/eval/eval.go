// Package eval evaluates a rule set against sample batches: for each rule
// it groups a batch's series by the rule's labels, computes the rule's stat
// per group, feeds it to that group's detector and steps that group's alert
// lifecycle, and returns the alert state changes to announce. It does no
// I/O and does not read the clock, so the analyzer, replays and rule unit
// tests all get the same alerts from the same batches.
//
// Time. Detectors and lifecycles run on the batches' own time (the end of
// each batch's interval), kept monotonic per host: the same batches always
// give the same transitions with the same StartsAt, so an alert announced
// twice (by a retry, or by two analyzers watching the same cluster) has
// the same JetStream message id and is stored once. The caller's clock
// only stamps Alert.At, when the change was decided.
package eval

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/analyzer/detect"
	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// Reasons a batch is not evaluated.
const (
	IgnoredDuplicate  = "duplicate"    // same Seq as the last batch of its host
	IgnoredOutOfOrder = "out_of_order" // older than the last batch of its host
)

// DefaultGroupIdleTTL is how long an inactive alert group that gets no
// samples is kept before it is forgotten.
const DefaultGroupIdleTTL = time.Hour

// Options tunes an Engine.
type Options struct {
	// GroupIdleTTL is how long (in batch time) an alert group that is
	// inactive and gets no samples is kept, with its detector's state,
	// before it is forgotten. Zero means DefaultGroupIdleTTL.
	GroupIdleTTL time.Duration
}

// Engine holds the state of every alert group of a rule set: one detector
// and one lifecycle per rule and label set. It is not safe for concurrent
// use.
type Engine struct {
	rules    []*rules.Rule
	bySignal map[string][]int // signal -> indexes of the rules watching it
	idleTTL  time.Duration
	hosts    map[hostKey]*host
	active   []Active
}

type hostKey struct{ cluster, host string }

// host is what the engine remembers about one host.
type host struct {
	seq    uint64
	start  time.Time
	last   time.Time           // evaluation time of the last batch
	groups []map[string]*group // per rule index: group key -> group
}

// group is one alert: a rule and one set of values of its by labels.
type group struct {
	labels      map[string]string // the alert's labels
	fingerprint string
	det         detect.Detector
	life        lifecycle.Alert
	lastSeen    time.Time // when samples of this group last arrived
	value       float64   // last value fed to the detector
	res         detect.Result
}

// Active counts the alerts of one rule that are pending and firing.
type Active struct {
	Rule    string
	Pending int
	Firing  int
}

// RuleError is a problem evaluating one rule on one batch, e.g. a stat
// that does not apply to the kind of the rule's signal.
type RuleError struct {
	Rule string
	Err  error
}

// Error names the rule and the problem.
func (e RuleError) Error() string { return fmt.Sprintf("rule %s: %v", e.Rule, e.Err) }

// Report is the outcome of evaluating one batch.
type Report struct {
	// Ignored is why the batch was not evaluated (IgnoredDuplicate,
	// IgnoredOutOfOrder), or empty.
	Ignored string
	// Restart is true when the batch starts a new collector run on its
	// host: its Seq went back while its time went forward.
	Restart bool
	// Samples is the number of series evaluated.
	Samples int
	// Groups is the number of alert groups whose detector was fed.
	Groups int
	// Errors are the rules that could not be evaluated (at most one per rule).
	Errors []RuleError
	// Alerts are the state changes to announce, in a stable order:
	// rule order, then label set.
	Alerts []*wire.Alert
}

// New returns an engine for the rules of set.
func New(set *rules.Set, opts Options) *Engine {
	e := &Engine{
		rules:    set.Rules(),
		bySignal: map[string][]int{},
		idleTTL:  opts.GroupIdleTTL,
		hosts:    map[hostKey]*host{},
	}
	if e.idleTTL <= 0 {
		e.idleTTL = DefaultGroupIdleTTL
	}
	e.active = make([]Active, len(e.rules))
	for i, r := range e.rules {
		e.bySignal[r.Signal] = append(e.bySignal[r.Signal], i)
		e.active[i].Rule = r.Alert
	}
	return e
}

// Active returns how many alerts of each rule are pending and firing,
// in rule order.
func (e *Engine) Active() []Active { return slices.Clone(e.active) }

// Validate checks what the engine needs of a batch beyond what
// wire.DecodeBatch checks.
func Validate(b *wire.Batch) error {
	if b.Interval <= 0 {
		return fmt.Errorf("batch interval %v is not positive", b.Interval)
	}
	if err := wire.ValidToken(b.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := wire.ValidToken(b.Host); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	return nil
}

// Eval evaluates one batch. now stamps the alerts' At. It returns an error,
// and changes nothing, when the batch is invalid (see Validate).
func (e *Engine) Eval(b *wire.Batch, now time.Time) (Report, error) {
	var rep Report
	if err := Validate(b); err != nil {
		return rep, err
	}
	hk := hostKey{b.Cluster, b.Host}
	h := e.hosts[hk]
	if h == nil {
		h = &host{groups: make([]map[string]*group, len(e.rules))}
		e.hosts[hk] = h
	} else {
		switch {
		case b.Seq > h.seq:
		case b.Start.After(h.start):
			rep.Restart = true
		case b.Seq == h.seq:
			rep.Ignored = IgnoredDuplicate
			return rep, nil
		default:
			rep.Ignored = IgnoredOutOfOrder
			return rep, nil
		}
	}
	h.seq, h.start = b.Seq, b.Start
	t := b.Start.Add(b.Interval)
	if t.Before(h.last) {
		t = h.last // the host's clock stepped back: keep time monotonic
	}
	h.last = t

	// Index the series the rules watch.
	watched := map[string][]*wire.Series{}
	for i := range b.Series {
		s := &b.Series[i]
		if _, ok := e.bySignal[s.Signal]; ok {
			watched[s.Signal] = append(watched[s.Signal], s)
		}
	}
	rep.Samples = len(b.Series)
	for i, r := range e.rules {
		e.evalRule(&rep, i, r, b, h, watched[r.Signal], t, now)
	}
	return rep, nil
}

func (e *Engine) evalRule(rep *Report, i int, r *rules.Rule, b *wire.Batch, h *host, series []*wire.Series, t, now time.Time) {
	groups := h.groups[i]
	if len(series) == 0 && len(groups) == 0 {
		return
	}
	if groups == nil {
		groups = map[string]*group{}
		h.groups[i] = groups
	}
	aggs := map[string]*agg{}
	for _, s := range series {
		key, vals := groupKey(r.By, b, s)
		a := aggs[key]
		if a == nil {
			a = &agg{byValues: vals}
			aggs[key] = a
		}
		a.add(s)
	}
	keys := slices.Collect(maps.Keys(groups))
	for k := range aggs {
		if groups[k] == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)

	var ruleErr error
	timing := lifecycle.Timing{For: r.For, KeepFiringFor: r.KeepFiringFor}
	for _, key := range keys {
		g, a := groups[key], aggs[key]
		if g == nil {
			g = newGroup(r, a.byValues)
			groups[key] = g
		}
		var (
			v   float64
			has bool
		)
		if a != nil {
			g.lastSeen = t
			var err error
			v, has, err = a.value(r.Signal, r.Stat, b.Interval)
			if err == nil && has && (math.IsNaN(v) || math.IsInf(v, 0)) {
				err, has = fmt.Errorf("%s of %s is %v", r.Stat, r.Signal, v), false
			}
			if err != nil && ruleErr == nil {
				ruleErr = err
			}
		} else if r.Stat.Additive() {
			// Collectors send only what changed: no samples is no increase.
			v, has = 0, true
		}
		if has {
			g.value = v
			g.res = g.det.Observe(t, v)
			before := g.life.State
			tr := g.life.Step(t, g.res.Firing, timing)
			e.count(i, before, g.life.State)
			rep.Groups++
			if tr == lifecycle.Fired || tr == lifecycle.Resolved {
				al, err := alertOf(r, g, tr, now)
				if err != nil && ruleErr == nil {
					ruleErr = err
				}
				rep.Alerts = append(rep.Alerts, al)
			}
		}
		// Forget label sets that went away, once nothing depends on them.
		if a == nil && g.life.State == lifecycle.Inactive && t.Sub(g.lastSeen) >= e.idleTTL {
			delete(groups, key)
		}
	}
	if ruleErr != nil {
		rep.Errors = append(rep.Errors, RuleError{Rule: r.Alert, Err: ruleErr})
	}
}

// count keeps the active-alert counts in step with a lifecycle step.
func (e *Engine) count(i int, before, after lifecycle.State) {
	if before == after {
		return
	}
	a := &e.active[i]
	switch before {
	case lifecycle.Pending:
		a.Pending--
	case lifecycle.Firing:
		a.Firing--
	}
	switch after {
	case lifecycle.Pending:
		a.Pending++
	case lifecycle.Firing:
		a.Firing++
	}
}

// groupKey returns the key of the label set of series s under by, and the
// by values. cluster and host come from the batch; other labels from the
// series, "" when it lacks them.
func groupKey(by []string, b *wire.Batch, s *wire.Series) (string, []string) {
	vals := make([]string, len(by))
	for i, name := range by {
		switch name {
		case "cluster":
			vals[i] = b.Cluster
		case "host":
			vals[i] = b.Host
		default:
			vals[i] = s.Label(name)
		}
	}
	return strings.Join(vals, "\xff"), vals
}

func newGroup(r *rules.Rule, byValues []string) *group {
	labels := make(map[string]string, len(r.By)+len(r.Labels)+1)
	for i, name := range r.By {
		if byValues[i] != "" { // an empty label is an absent label
			labels[name] = byValues[i]
		}
	}
	maps.Copy(labels, r.Labels)
	labels["alertname"] = r.Alert
	return &group{labels: labels, fingerprint: Fingerprint(r.Alert, labels), det: r.Detector.New()}
}

// Fingerprint identifies an alert: a stable hash of its rule's name and its
// labels, as 16 hex digits.
func Fingerprint(rule string, labels map[string]string) string {
	h := fnv.New64a()
	sep := []byte{0xff} // never part of valid UTF-8: no ambiguous joins
	h.Write([]byte(rule))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write(sep)
		h.Write([]byte(k))
		h.Write(sep)
		h.Write([]byte(labels[k]))
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// alertOf builds the announcement of transition tr of group g.
func alertOf(r *rules.Rule, g *group, tr lifecycle.Transition, now time.Time) (*wire.Alert, error) {
	a := &wire.Alert{
		Fingerprint: g.fingerprint,
		Rule:        r.Alert,
		Group:       r.Group,
		State:       wire.StateFiring,
		Labels:      maps.Clone(g.labels),
		Signal:      r.Signal,
		Stat:        string(r.Stat),
		Value:       g.value,
		Threshold:   g.res.Threshold,
		Baseline:    g.res.Baseline,
		Score:       g.res.Score,
		StartsAt:    g.life.FiredAt,
		At:          now,
	}
	if tr == lifecycle.Resolved {
		a.State, a.EndsAt = wire.StateResolved, g.life.ResolvedAt
	}
	ann, err := r.Annotate(rules.TemplateData{
		Labels: g.labels, Value: g.value, Threshold: g.res.Threshold, Baseline: g.res.Baseline, Score: g.res.Score,
	})
	a.Annotations = ann
	return a, err
}
