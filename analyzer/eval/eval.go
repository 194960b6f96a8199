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
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/detect"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// Reasons a batch is not evaluated.
const (
	IgnoredDuplicate  = "duplicate"    // same Seq as the last batch of its host
	IgnoredOutOfOrder = "out_of_order" // older than the last batch of its host
)

// Reasons a series of a batch is dropped before evaluation
// (Report.Dropped).
const (
	DroppedNaN      = "nan"              // value (or histogram sum) is NaN
	DroppedInf      = "inf"              // value (or histogram sum) is infinite
	DroppedNegative = "negative_counter" // a counter's increase is negative
	DroppedNoHist   = "no_histogram"     // a histogram series without its histogram
)

// DropReasons lists every reason a series is dropped.
func DropReasons() []string {
	return []string{DroppedNaN, DroppedInf, DroppedNegative, DroppedNoHist}
}

// Reasons a series of a batch is refused because its host is over a cap
// (Report.Refused).
const (
	RefusedMaxSeries = "max_series" // a new series of a host that has MaxSeriesPerHost
	RefusedMaxGroups = "max_groups" // a new alert group of a host that has MaxGroupsPerHost
)

// RefuseReasons lists every reason a series is refused.
func RefuseReasons() []string { return []string{RefusedMaxSeries, RefusedMaxGroups} }

// DefaultGroupIdleTTL is how long an inactive alert group that gets no
// samples is kept before it is forgotten.
const DefaultGroupIdleTTL = time.Hour

// Default caps per host (Options.MaxSeriesPerHost, MaxGroupsPerHost). A
// database host sends a few hundred series (peers, devices, instances,
// times the signals the rules watch); the caps leave room for large
// hosts and bound what one host that sends garbage can make the analyzer
// hold: each alert group keeps a detector (a few KiB). The default rules
// watch one signal with up to three rules (db_query_seconds: latency high,
// latency anomaly, rate anomaly), so the group cap leaves room for every
// series at the series cap to have its groups: a host's known series keep
// firing however much garbage it sends after them.
const (
	DefaultMaxSeriesPerHost = 2000
	DefaultMaxGroupsPerHost = 10000
)

// Options tunes an Engine.
type Options struct {
	// GroupIdleTTL is how long (in batch time) an alert group that is
	// inactive and gets no samples is kept, with its detector's state,
	// before it is forgotten. Zero means DefaultGroupIdleTTL.
	GroupIdleTTL time.Duration
	// MaxSeriesPerHost caps the distinct series (signal and labels) of one
	// host that the rules watch: a new series beyond it is refused (and
	// counted in Report.Refused) until one of the host's series has been
	// silent for GroupIdleTTL. Series already known go on being evaluated.
	// Zero means DefaultMaxSeriesPerHost; negative, no cap.
	MaxSeriesPerHost int
	// MaxGroupsPerHost caps the alert groups of one host, over every
	// rule: a series that would create one more is refused. Zero means
	// DefaultMaxGroupsPerHost; negative, no cap.
	MaxGroupsPerHost int
}

// Engine holds the state of every alert group of a rule set: one detector
// and one lifecycle per rule and label set. It is not safe for concurrent
// use.
type Engine struct {
	rules    []*rules.Rule
	bySignal map[string][]int // signal -> indexes of the rules watching it
	idleTTL  time.Duration
	maxSer   int // per host; 0: no cap
	maxGrp   int // per host; 0: no cap
	seed     maphash.Seed
	hosts    map[hostKey]*host
	active   []Active
	announce []announcement   // scratch: the transitions of the batch being evaluated
	tickers  bool             // some rule's detector judges time itself (detect.Ticker)
	sigIndex map[string]int   // signal -> index into watched
	ruleSig  []int            // per rule: its signal's index
	watched  [][]*wire.Series // scratch: the batch's series, per signal
	key      []byte           // scratch: a group key
	round    uint64           // Eval calls so far
	// topLabel is, per rule, the label that correlations name (peer,
	// device, instance) when the rule does not group by it, or "".
	topLabel []string
}

// announcement is a transition to announce once a batch is evaluated.
type announcement struct {
	rule int
	g    *group
	h    *host
	tr   lifecycle.Transition
}

type hostKey struct{ cluster, host string }

// host is what the engine remembers about one host.
type host struct {
	seq      uint64
	start    time.Time
	last     time.Time     // evaluation time of the last batch
	arrived  time.Time     // the caller's clock when the last batch was evaluated
	interval time.Duration // of the last batch
	groups   []*groupSet   // per rule index, nil until the rule has a group here
	// series is when (batch time) each series the rules watch was last
	// seen, by a hash of its signal and labels: what MaxSeriesPerHost
	// counts.
	series map[uint64]time.Time
	swept  uint64 // the Eval round of the last sweep of series
}

// numGroups counts the host's alert groups over every rule.
func (h *host) numGroups() int {
	n := 0
	for _, gs := range h.groups {
		n += gs.len()
	}
	return n
}

// busy reports whether some alert group of the host is pending or firing.
func (h *host) busy() bool {
	for _, gs := range h.groups {
		for _, g := range gs.all() {
			if g.life.State != lifecycle.Inactive {
				return true
			}
		}
	}
	return false
}

// group is one alert: a rule and one set of values of its by labels.
type group struct {
	key         string            // the by values joined by 0xff
	by          []string          // values of the rule's by labels
	labels      map[string]string // the alert's labels
	fingerprint string
	det         detect.Detector
	life        lifecycle.Alert
	lastSeen    time.Time // when samples of this group last arrived
	round       uint64    // the Eval call that last fed acc
	acc         agg       // this interval's series of the group
	value       float64   // last value fed to the detector
	top         string    // peer, device or instance of the largest contributor, when not a by label
	res         detect.Result
	ev          rules.EvidenceRun // the rule's evidence so far (rules with evidence)
	stepped     time.Time         // when the group was last stepped
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
	// Missed is how many batches of the host's collector run never
	// arrived between its previous batch and this one (a gap in Seq).
	Missed uint64
	// Samples is the number of series evaluated.
	Samples int
	// Dropped counts the series left out of the evaluation, by reason
	// (DroppedNaN, ...): a bad series must not poison its label set's stat.
	Dropped map[string]int
	// Refused counts the series left out because their host is over a cap
	// (RefusedMaxSeries, RefusedMaxGroups).
	Refused map[string]int
	// Groups is the number of alert groups whose detector was fed.
	Groups int
	// Errors are the rules that could not be evaluated (at most one per rule).
	Errors []RuleError
	// Alerts are the state changes to announce, in a stable order:
	// rule order, then label set.
	Alerts []*wire.Alert
	// Changes are the alert groups whose lifecycle changed (pending,
	// firing, quiet, resolved), to persist so that a restarted analyzer
	// neither re-fires nor forgets them (see Restore).
	Changes []GroupState
}

// GroupState is what must survive a restart of one alert group that is
// pending or firing, or that a person resolved and whose quiet window
// (lifecycle.Alert.SuppressUntil) has not ended: its lifecycle, and the
// state of its host's batches at the time. Any other inactive group is
// not kept (see Keep).
type GroupState struct {
	Rule        string          `json:"rule"`
	Fingerprint string          `json:"fingerprint"`
	Cluster     string          `json:"cluster"`
	Host        string          `json:"host"`
	By          []string        `json:"by"` // values of the rule's by labels, in by order
	Life        lifecycle.Alert `json:"life"`
	Value       float64         `json:"value"`
	// Seq, Start and Last are the host's last evaluated batch.
	Seq   uint64    `json:"seq"`
	Start time.Time `json:"start"`
	Last  time.Time `json:"last"`
}

// Keep reports whether the state must be kept at now: the group is
// pending or firing, or in the quiet window after a person resolved it.
func (st *GroupState) Keep(now time.Time) bool {
	return st.Life.State != lifecycle.Inactive || now.Before(st.Life.SuppressUntil)
}

// Restore recreates alert groups from their persisted state, as after a
// restart, with fresh detectors: a firing alert goes on firing (and
// resolves normally), and the hosts' last batches are remembered so that
// a batch evaluated before the restart is not evaluated again. States of
// rules that no longer exist or whose labels changed are skipped. It
// returns how many groups were restored. Call it before any Eval.
func (e *Engine) Restore(states []GroupState) int {
	n := 0
	for _, st := range states {
		i := slices.IndexFunc(e.rules, func(r *rules.Rule) bool { return r.Alert == st.Rule })
		if i < 0 || len(st.By) != len(e.rules[i].By) || (st.Life.State == lifecycle.Inactive && st.Life.SuppressUntil.IsZero()) {
			continue
		}
		r := e.rules[i]
		g := newGroup(r, st.By)
		if g.fingerprint != st.Fingerprint {
			continue // the rule's labels changed: another alert now
		}
		hk := hostKey{st.Cluster, st.Host}
		h := e.hosts[hk]
		if h == nil {
			h = &host{groups: make([]*groupSet, len(e.rules))}
			e.hosts[hk] = h
		}
		if st.Last.After(h.last) {
			h.seq, h.start, h.last = st.Seq, st.Start, st.Last
		}
		if h.groups[i] == nil {
			h.groups[i] = newGroupSet()
		}
		if old := h.groups[i].m[g.key]; old != nil {
			e.count(i, old.life.State, lifecycle.Inactive)
		}
		g.life, g.value, g.lastSeen = st.Life, st.Value, st.Last
		h.groups[i].put(g)
		e.count(i, lifecycle.Inactive, g.life.State)
		n++
	}
	return n
}

// New returns an engine for the rules of set.
func New(set *rules.Set, opts Options) *Engine {
	e := &Engine{
		rules:    set.Rules(),
		bySignal: map[string][]int{},
		idleTTL:  opts.GroupIdleTTL,
		maxSer:   capOf(opts.MaxSeriesPerHost, DefaultMaxSeriesPerHost),
		maxGrp:   capOf(opts.MaxGroupsPerHost, DefaultMaxGroupsPerHost),
		seed:     maphash.MakeSeed(),
		hosts:    map[hostKey]*host{},
		sigIndex: map[string]int{},
	}
	if e.idleTTL <= 0 {
		e.idleTTL = DefaultGroupIdleTTL
	}
	e.active = make([]Active, len(e.rules))
	e.topLabel = make([]string, len(e.rules))
	for i, r := range e.rules {
		if l := infoOf(r.Signal).label; l != "" && !slices.Contains(r.By, l) {
			e.topLabel[i] = l
		}
		e.bySignal[r.Signal] = append(e.bySignal[r.Signal], i)
		sig, ok := e.sigIndex[r.Signal]
		if !ok {
			sig = len(e.watched)
			e.sigIndex[r.Signal] = sig
			e.watched = append(e.watched, nil)
		}
		e.ruleSig = append(e.ruleSig, sig)
		e.active[i].Rule = r.Alert
		if _, ok := r.Detector.New().(detect.Ticker); ok {
			e.tickers = true
		}
	}
	return e
}

// capOf is a cap option: zero takes def, negative means none (0).
func capOf(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
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
		h = &host{groups: make([]*groupSet, len(e.rules))}
		e.hosts[hk] = h
	} else {
		switch {
		case b.Seq > h.seq:
			rep.Missed = b.Seq - h.seq - 1
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
	h.last, h.arrived, h.interval = t, now, b.Interval

	// Index the series the rules watch, by signal.
	for k := range e.watched {
		e.watched[k] = e.watched[k][:0]
	}
	for i := range b.Series {
		s := &b.Series[i]
		sig, ok := e.sigIndex[s.Signal]
		if !ok {
			continue
		}
		if reason := badSeries(s); reason != "" {
			if rep.Dropped == nil {
				rep.Dropped = map[string]int{}
			}
			rep.Dropped[reason]++
			continue
		}
		if !e.admitSeries(h, s, t) {
			refuse(&rep, RefusedMaxSeries)
			continue
		}
		e.watched[sig] = append(e.watched[sig], s)
	}
	rep.Samples = len(b.Series)
	e.announce = e.announce[:0]
	e.round++
	for i, r := range e.rules {
		e.evalRule(&rep, i, r, b, h, e.watched[e.ruleSig[i]], t)
	}
	for k := range e.watched {
		clear(e.watched[k]) // do not keep the batch alive
	}
	e.announceAll(&rep, now)
	return rep, nil
}

// refuse counts one series refused for reason.
func refuse(rep *Report, reason string) {
	if rep.Refused == nil {
		rep.Refused = map[string]int{}
	}
	rep.Refused[reason]++
}

// admitSeries records that host h sent series s at batch time t and
// reports whether it may be evaluated: a series the host sent before, or
// a new one while the host is under MaxSeriesPerHost. A host at its cap
// forgets its series silent for the idle TTL (at most once per batch)
// before a new one is refused.
func (e *Engine) admitSeries(h *host, s *wire.Series, t time.Time) bool {
	if e.maxSer == 0 {
		return true
	}
	id := e.seriesID(s)
	if h.series == nil {
		h.series = make(map[uint64]time.Time)
	}
	if _, ok := h.series[id]; ok {
		h.series[id] = t
		return true
	}
	if len(h.series) >= e.maxSer && h.swept != e.round {
		h.swept = e.round
		maps.DeleteFunc(h.series, func(_ uint64, seen time.Time) bool { return t.Sub(seen) >= e.idleTTL })
	}
	if len(h.series) >= e.maxSer {
		return false
	}
	h.series[id] = t
	return true
}

// seriesID hashes the signal and labels of s.
func (e *Engine) seriesID(s *wire.Series) uint64 {
	var mh maphash.Hash
	mh.SetSeed(e.seed)
	mh.WriteString(s.Signal)
	for _, l := range s.Labels {
		mh.WriteByte(0xff)
		mh.WriteString(l.Name)
		mh.WriteByte(0xfe)
		mh.WriteString(l.Value)
	}
	return mh.Sum64()
}

// Expire forgets the hosts that sent nothing for the idle TTL (by the
// caller's clock now, measured from when their last batch arrived) and
// have no pending or firing alert, with their series and detectors. It
// returns them, as cluster and host pairs.
func (e *Engine) Expire(now time.Time) [][2]string {
	var out [][2]string
	for hk, h := range e.hosts {
		if h.arrived.IsZero() || now.Sub(h.arrived) < e.idleTTL || h.busy() {
			continue
		}
		delete(e.hosts, hk)
		out = append(out, [2]string{hk.cluster, hk.host})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0]+"\xff"+a[1], b[0]+"\xff"+b[1]) })
	return out
}

// Hosts is the number of hosts the engine remembers.
func (e *Engine) Hosts() int { return len(e.hosts) }

func (e *Engine) evalRule(rep *Report, i int, r *rules.Rule, b *wire.Batch, h *host, series []*wire.Series, t time.Time) {
	groups := h.groups[i]
	if len(series) == 0 && groups.len() == 0 {
		return
	}
	if groups == nil {
		groups = newGroupSet()
		h.groups[i] = groups
	}
	buckets := needsBuckets(r.Stat)
	for _, s := range series {
		e.key = appendGroupKey(e.key[:0], r.By, b, s)
		g := groups.m[string(e.key)]
		if g == nil {
			if e.maxGrp > 0 && h.numGroups() >= e.maxGrp {
				refuse(rep, RefusedMaxGroups)
				continue
			}
			g = newGroup(r, byValues(r.By, b, s))
			g.key = string(e.key)
			groups.put(g)
		}
		if g.round != e.round {
			g.round = e.round
			g.acc.reset()
		}
		g.acc.add(s, buckets)
	}

	var (
		ruleErr error
		idle    bool
	)
	for _, g := range groups.all() {
		var (
			v   float64
			has bool
		)
		fed := g.round == e.round
		if fed {
			a := &g.acc
			g.lastSeen = t
			if lbl := e.topLabel[i]; lbl != "" && a.top != nil {
				if v := a.top.Label(lbl); v != g.top {
					g.top = v
				}
			}
			var err error
			v, has, err = a.value(r.Signal, r.Stat, b.Interval)
			if err == nil && has && (math.IsNaN(v) || math.IsInf(v, 0)) {
				err, has = fmt.Errorf("%s of %s is %v", r.Stat, r.Signal, v), false
			}
			if err != nil && ruleErr == nil {
				ruleErr = err
			}
			a.release()
		} else if r.Stat.Additive() {
			// Collectors send only what changed: no samples is no increase.
			v, has = 0, true
		} else if tk, ok := g.det.(detect.Ticker); ok {
			// A detector of time itself (absence) judges the silence.
			e.step(rep, i, r, g, h, b.Cluster, b.Host, t, b.Interval, tk.Tick(t), math.NaN())
		}
		if has {
			g.value = v
			e.step(rep, i, r, g, h, b.Cluster, b.Host, t, b.Interval, g.det.Observe(t, v), v)
		}
		if !fed && g.life.State == lifecycle.Inactive && t.Sub(g.lastSeen) >= e.idleTTL && !t.Before(g.life.SuppressUntil) {
			idle = true
		}
	}
	if idle {
		// Forget label sets that went away, once nothing depends on them.
		groups.removeIf(func(g *group) bool {
			// (A group a person resolved keeps its quiet window.)
			return g.round != e.round && g.life.State == lifecycle.Inactive && t.Sub(g.lastSeen) >= e.idleTTL &&
				!t.Before(g.life.SuppressUntil)
		})
	}
	if ruleErr != nil {
		rep.Errors = append(rep.Errors, RuleError{Rule: r.Alert, Err: ruleErr})
	}
}

// step steps group g of rule i on host h at time t with its detector's
// verdict res on value v (NaN for a tick without a value) over covered
// time d, and records the state change and the transition to announce.
//
// A rule with evidence (rules.Evidence) fires once its evidence run is
// enough rather than after `for`; once firing, it stays so while the
// detector fires and for keep_firing_for after, like any rule.
func (e *Engine) step(rep *Report, i int, r *rules.Rule, g *group, h *host, cluster, hostName string, t time.Time, d time.Duration, res detect.Result, v float64) {
	g.res = res
	was := g.life
	g.stepped = t
	tr := g.life.StepRule(r, &g.ev, t, d, res, v)
	e.count(i, was.State, g.life.State)
	if g.life != was {
		st := GroupState{
			Rule: r.Alert, Fingerprint: g.fingerprint, Cluster: cluster, Host: hostName, By: g.by,
			Life: g.life, Value: g.value, Seq: h.seq, Start: h.start, Last: h.last,
		}
		if math.IsNaN(st.Value) || math.IsInf(st.Value, 0) {
			st.Value = 0 // JSON has no NaN
		}
		rep.Changes = append(rep.Changes, st)
	}
	rep.Groups++
	if tr == lifecycle.Fired || tr == lifecycle.Resolved {
		e.announce = append(e.announce, announcement{rule: i, g: g, h: h, tr: tr})
	}
}

// Tick judges the silence of hosts that stopped sending, for the rules
// whose detectors judge time itself (detect.Ticker, e.g. absence): each
// host's time is taken as the end of its last batch plus the time the
// analyzer's clock (now) has run since that batch arrived, so clock skew
// between hosts does not matter. A host is ticked only once it is late
// (no batch for more than its interval). Call it periodically.
func (e *Engine) Tick(now time.Time) Report {
	var rep Report
	if !e.tickers {
		return rep
	}
	e.announce = e.announce[:0]
	hks := slices.SortedFunc(maps.Keys(e.hosts), func(a, b hostKey) int {
		return strings.Compare(a.cluster+"\xff"+a.host, b.cluster+"\xff"+b.host)
	})
	for _, hk := range hks {
		h := e.hosts[hk]
		if h.arrived.IsZero() || now.Sub(h.arrived) <= h.interval {
			continue
		}
		t := h.last.Add(now.Sub(h.arrived))
		for i, r := range e.rules {
			for _, g := range h.groups[i].all() {
				if tk, ok := g.det.(detect.Ticker); ok {
					d := h.interval
					if !g.stepped.IsZero() {
						d = max(t.Sub(g.stepped), 0)
					}
					e.step(&rep, i, r, g, h, hk.cluster, hk.host, t, d, tk.Tick(t), math.NaN())
				}
			}
		}
	}
	e.announceAll(&rep, now)
	return rep
}

// announceAll builds the announcements of the transitions of one
// evaluation, once every rule has stepped, so that each sees what else is
// anomalous on its host.
func (e *Engine) announceAll(rep *Report, now time.Time) {
	for _, an := range e.announce {
		r := e.rules[an.rule]
		al, err := alertOf(r, an.g, an.tr, now, correlation(e.rules, an.h, an.rule, an.g))
		if err != nil && !slices.ContainsFunc(rep.Errors, func(re RuleError) bool { return re.Rule == r.Alert }) {
			rep.Errors = append(rep.Errors, RuleError{Rule: r.Alert, Err: err})
		}
		rep.Alerts = append(rep.Alerts, al)
	}
	clear(e.announce)
	e.announce = e.announce[:0]
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

// appendGroupKey appends the key of the label set of series s under by:
// the by values joined by 0xff. cluster and host come from the batch;
// other labels from the series, "" when it lacks them.
func appendGroupKey(dst []byte, by []string, b *wire.Batch, s *wire.Series) []byte {
	for i, name := range by {
		if i > 0 {
			dst = append(dst, 0xff)
		}
		switch name {
		case "cluster":
			dst = append(dst, b.Cluster...)
		case "host":
			dst = append(dst, b.Host...)
		default:
			dst = append(dst, s.Label(name)...)
		}
	}
	return dst
}

// byValues returns the values of the by labels of series s.
func byValues(by []string, b *wire.Batch, s *wire.Series) []string {
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
	return vals
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
	return &group{key: strings.Join(byValues, "\xff"), by: slices.Clone(byValues), labels: labels, fingerprint: Fingerprint(r.Alert, labels), det: r.Detector.New()}
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
// A firing alert's annotation `correlated` (AnnotationCorrelated) says
// which other signals of its host are anomalous at the same time, and
// `kind` (AnnotationKind) what kind of anomaly the detector saw when it
// names one (the auto detector: "level shift", "drift", ...).
func alertOf(r *rules.Rule, g *group, tr lifecycle.Transition, now time.Time, correlated string) (*wire.Alert, error) {
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
	td := rules.TemplateData{
		Labels: g.labels, Value: g.value, Threshold: g.res.Threshold, Baseline: g.res.Baseline, Score: g.res.Score,
	}
	if tr == lifecycle.Fired {
		td.Correlated = correlated
	}
	ann, err := r.Annotate(td)
	if correlated != "" && tr == lifecycle.Fired {
		if ann == nil {
			ann = map[string]string{}
		}
		ann[AnnotationCorrelated] = correlated
	}
	if k := g.res.Kind; k != "" && tr == lifecycle.Fired {
		if ann == nil {
			ann = map[string]string{}
		}
		ann[AnnotationKind] = k
	}
	a.Annotations = ann
	return a, err
}

// Firing returns the alerts that are firing now, as announcements stamped
// now, in a stable order (rule order, then cluster, host and label set).
// Their annotations are rendered with each group's latest value.
func (e *Engine) Firing(now time.Time) []*wire.Alert {
	var out []*wire.Alert
	hks := slices.SortedFunc(maps.Keys(e.hosts), func(a, b hostKey) int {
		return strings.Compare(a.cluster+"\xff"+a.host, b.cluster+"\xff"+b.host)
	})
	for i, r := range e.rules {
		for _, hk := range hks {
			h := e.hosts[hk]
			for _, g := range h.groups[i].all() {
				if g.life.State != lifecycle.Firing {
					continue
				}
				al, _ := alertOf(r, g, lifecycle.Fired, now, correlation(e.rules, h, i, g)) // template errors are in the annotation text
				out = append(out, al)
			}
		}
	}
	return out
}

// Adopt takes over the state of old, an engine of a previous rule set:
// every host's sequence and time, and the alert groups (detector state and
// lifecycle) of each rule whose definition did not change
// (rules.SameDefinition). Rules that are new or changed start afresh;
// alerts of removed or changed rules are dropped without an announcement.
// It returns the number of rules whose state was kept. old must not be
// used afterwards.
func (e *Engine) Adopt(old *Engine) int {
	if old == nil {
		return 0
	}
	from := make([]int, len(e.rules)) // new rule index -> old index, or -1
	kept := 0
	for i, r := range e.rules {
		from[i] = -1
		for j, o := range old.rules {
			if o.Alert == r.Alert && rules.SameDefinition(o, r) {
				from[i] = j
				kept++
				break
			}
		}
	}
	for hk, oh := range old.hosts {
		h := &host{seq: oh.seq, start: oh.start, last: oh.last, arrived: oh.arrived, interval: oh.interval, groups: make([]*groupSet, len(e.rules))}
		for i, j := range from {
			if j < 0 {
				continue
			}
			h.groups[i] = oh.groups[j]
			for _, g := range oh.groups[j].all() {
				e.count(i, lifecycle.Inactive, g.life.State)
			}
		}
		e.hosts[hk] = h
	}
	return kept
}

// badSeries says why a series cannot be evaluated, or "".
func badSeries(s *wire.Series) string {
	v := s.Value
	switch s.Kind {
	case wire.KindHistogram:
		if s.Hist == nil {
			return DroppedNoHist
		}
		v = s.Hist.Sum
	case wire.KindCounter:
		if v < 0 {
			return DroppedNegative
		}
	}
	switch {
	case math.IsNaN(v):
		return DroppedNaN
	case math.IsInf(v, 0):
		return DroppedInf
	}
	return ""
}

// Resolve ends the firing alert fingerprint at now because a person
// declared it over (the Resolve button, /mciv resolve): the report holds
// its resolved announcement and its state change, and the alert does not
// fire again within its rule's keep_firing_for (see
// lifecycle.Alert.Resolve). An unknown or not firing alert gives an empty
// report.
func (e *Engine) Resolve(fingerprint string, now time.Time) Report {
	var rep Report
	for hk, h := range e.hosts {
		for i, r := range e.rules {
			if h.groups[i] == nil {
				continue
			}
			for _, g := range h.groups[i].all() {
				if g.fingerprint != fingerprint {
					continue
				}
				was := g.life
				if g.life.Resolve(now, lifecycle.Timing{For: r.For, KeepFiringFor: r.KeepFiringFor}) != lifecycle.Resolved {
					return rep
				}
				e.count(i, was.State, g.life.State)
				st := GroupState{
					Rule: r.Alert, Fingerprint: g.fingerprint, Cluster: hk.cluster, Host: hk.host, By: g.by,
					Life: g.life, Value: g.value, Seq: h.seq, Start: h.start, Last: h.last,
				}
				if math.IsNaN(st.Value) || math.IsInf(st.Value, 0) {
					st.Value = 0
				}
				rep.Changes = append(rep.Changes, st)
				al, err := alertOf(r, g, lifecycle.Resolved, now, "")
				if err != nil {
					rep.Errors = append(rep.Errors, RuleError{Rule: r.Alert, Err: err})
				}
				rep.Alerts = append(rep.Alerts, al)
				rep.Groups++
				return rep
			}
		}
	}
	return rep
}
