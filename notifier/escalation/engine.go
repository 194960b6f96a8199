// Package escalation phones the on-call people about critical alerts until
// one of them acknowledges.
//
// An [Engine] starts an escalation when a firing alert matches a policy
// (it is a notifier.Notifier, so the dispatcher feeds it), calls the people
// each step names when the step is due (by an injected clock: production
// calls Tick from Run, tests call it after moving their clock), and stops
// when the alert resolves or somebody acknowledges: with a Slack button
// (an Ack on the JetStream stream MCIV_ACKS, see ConsumeAcks) or by
// pressing a key on the phone (which it publishes as an Ack in turn).
// Quotas bound the calls to one person. Every call, its outcome and the
// key pressed go to the alert's Slack thread through a [ThreadPoster], and
// to the log. Escalations are kept in a [Store] (JetStream KV in
// production), so a restarted notifier continues them where they were.
package escalation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/phone"
	"github.com/mciv/mciv/notifier/speech"
	"github.com/prometheus/client_golang/prometheus"
)

// Name is the integration's name in logs and metrics.
const Name = "escalation"

// SilenceFor is how long key 3 silences an alert.
const SilenceFor = time.Hour

// keepStopped is how long a stopped escalation is remembered: for the
// hourly quota, and to recognise a redelivered alert.
const keepStopped = 24 * time.Hour

// ThreadPoster posts a reply in an alert's Slack thread (the Slack
// integration implements it).
type ThreadPoster interface {
	PostThreadReply(ctx context.Context, fingerprint, text string) error
}

// AckPublisher publishes an acknowledgement made on the phone, so that
// Slack and the other notifier replicas learn of it.
type AckPublisher interface {
	PublishAck(ctx context.Context, ack *wire.Ack) error
}

// Clips turns the text of a call into the URL of a clip the phone
// provider plays (voice.PhoneClips implements it).
type Clips interface {
	URL(ctx context.Context, text string) (string, error)
}

// Options configures an Engine.
type Options struct {
	Config   Config
	Provider phone.Provider
	// Store keeps escalations; nil keeps them in memory only.
	Store Store
	// Thread receives a reply per call, outcome and stop; nil posts
	// nothing.
	Thread ThreadPoster
	// Clips, when set, speaks the alert with our text-to-speech chain and
	// the call plays the clip; when it is nil or fails, the provider's own
	// text-to-speech says the text.
	Clips Clips
	// Acks publishes phone acknowledgements; nil publishes none.
	Acks AckPublisher
	// AckChecker decides which acknowledgements consumed from MCIV_ACKS
	// may stop an escalation (auth on: signed by the notifier or an
	// operator in its own name); nil checks only the cluster (auth off).
	AckChecker *auth.AckChecker
	// AcksRefused counts the refused ones by reason; nil: a counter of
	// the engine's own (AcksRefused).
	AcksRefused *prometheus.CounterVec
	// Cluster is used for the Ack subject when an alert has no cluster
	// label.
	Cluster string
	// CallTimeout bounds placing one call; default 15s.
	CallTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// State is one escalation, as stored.
type State struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Cluster     string            `json:"cluster,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Text        string            `json:"text"`      // what the call says
	StartsAt    time.Time         `json:"starts_at"` // the firing's start: which firing this is
	Started     time.Time         `json:"started"`   // when the escalation started (steps count from it)
	Policy      string            `json:"policy"`
	Next        int               `json:"next"` // the next step to run, counting repeats
	Calls       []Call            `json:"calls,omitempty"`
	// Suppressed counts calls a quota prevented.
	Suppressed int       `json:"suppressed,omitempty"`
	Stopped    bool      `json:"stopped,omitempty"`
	StoppedAt  time.Time `json:"stopped_at,omitzero"`
	StopReason string    `json:"stop_reason,omitempty"`
}

// Call is one call placed (or attempted) by an escalation.
type Call struct {
	ID     phone.CallID `json:"id,omitempty"`
	Person string       `json:"person"`
	Step   int          `json:"step"`
	At     time.Time    `json:"at"`
	Status phone.Status `json:"status,omitempty"`
	Digits string       `json:"digits,omitempty"`
	Err    string       `json:"err,omitempty"`
}

// Engine runs escalations. It is safe for concurrent use.
type Engine struct {
	opts  Options
	sched *schedule
	log   *slog.Logger

	tickMu sync.Mutex // one Tick or Notify at a time: they place calls
	mu     sync.Mutex // guards states
	states map[string]*State
}

// New returns an Engine with no escalations; call Load to continue the
// stored ones.
func New(opts Options) (*Engine, error) {
	sched, err := compile(opts.Config)
	if err != nil {
		return nil, err
	}
	if opts.Provider == nil {
		return nil, errors.New("escalation: no phone provider")
	}
	if opts.Store == nil {
		opts.Store = NewMemoryStore()
	}
	if opts.AcksRefused == nil {
		opts.AcksRefused = NewAcksRefusedCounter()
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 15 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{opts: opts, sched: sched, log: log, states: map[string]*State{}}, nil
}

// Name returns "escalation".
func (e *Engine) Name() string { return Name }

// Load reads the stored escalations; those still running continue at the
// next Tick.
func (e *Engine) Load(ctx context.Context) error {
	states, err := e.opts.Store.Load(ctx)
	now := e.opts.Now()
	e.mu.Lock()
	for _, st := range states {
		if !st.Stopped || now.Sub(st.StoppedAt) <= keepStopped {
			e.states[st.Fingerprint] = st
		}
	}
	e.mu.Unlock()
	running := 0
	for _, st := range states {
		if !st.Stopped {
			running++
		}
	}
	e.log.Info("escalations loaded", "running", running, "stored", len(states))
	return err
}

// Escalation returns a copy of the escalation of fingerprint.
func (e *Engine) Escalation(fingerprint string) (State, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.states[fingerprint]
	if !ok {
		return State{}, false
	}
	c := *st
	c.Calls = append([]Call(nil), st.Calls...)
	return c, true
}

// Notify starts an escalation for a firing alert that matches a policy
// (and calls whoever is due at once), and stops it when the alert
// resolves. It returns an error only when the escalation could not be
// stored, so that the dispatcher retries; failed calls are reported in
// the thread and the log, not returned.
func (e *Engine) Notify(ctx context.Context, a *wire.Alert) error {
	e.tickMu.Lock()
	defer e.tickMu.Unlock()
	now := e.opts.Now()
	switch a.State {
	case wire.StateResolved:
		e.stop(ctx, a.Fingerprint, time.Time{}, "the alert resolved", now)
		return nil
	case wire.StateFiring:
	default:
		return nil
	}
	pol, ok := e.sched.policyFor(a.Labels)
	if !ok {
		return nil
	}
	e.mu.Lock()
	old := e.states[a.Fingerprint]
	if old != nil && old.StartsAt.Equal(a.StartsAt) {
		e.mu.Unlock()
		return nil // this firing has (or had) its escalation already
	}
	st := &State{
		Fingerprint: a.Fingerprint,
		Rule:        a.Rule,
		Cluster:     a.Labels[speech.LabelCluster],
		Labels:      a.Labels,
		Text:        speech.Text(a),
		StartsAt:    a.StartsAt,
		Started:     now,
		Policy:      pol.Name,
	}
	e.states[a.Fingerprint] = st
	snapshot := *st
	e.mu.Unlock()
	if err := e.opts.Store.Put(ctx, &snapshot); err != nil {
		return err
	}
	e.log.Info("escalation started", "rule", a.Rule, "fingerprint", a.Fingerprint, "policy", pol.Name)
	e.reply(ctx, a.Fingerprint, "📟 Phone escalation started (policy "+pol.Name+"): "+e.plan(pol, now)+".")
	e.tick(ctx, now, a.Fingerprint)
	return nil
}

// plan describes the policy's steps for the thread:
// "primary (alice) now, secondary (bob) in 10m, everyone in 20m".
func (e *Engine) plan(p Policy, now time.Time) string {
	var parts []string
	for _, st := range p.Steps {
		var who []string
		for _, t := range st.Call {
			if r := e.sched.rotations[t]; r != nil {
				who = append(who, t+" ("+r.onCall(now.Add(st.After))+")")
			} else {
				who = append(who, t)
			}
		}
		when := "now"
		if st.After > 0 {
			when = "after " + st.After.String()
		}
		parts = append(parts, strings.Join(who, ", ")+" "+when)
	}
	s := strings.Join(parts, "; ")
	if p.Repeat > 0 {
		s += fmt.Sprintf("; repeated %d more time(s)", p.Repeat)
	}
	return s
}

// Tick places the calls that are due, for every running escalation.
func (e *Engine) Tick(ctx context.Context) {
	e.tickMu.Lock()
	defer e.tickMu.Unlock()
	e.tick(ctx, e.opts.Now(), "")
}

// Run calls Tick every interval until ctx ends.
func (e *Engine) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			e.Tick(ctx)
		}
	}
}

// due is when step k (counting repeats) of an escalation is due.
func due(st *State, p Policy, k int) time.Time {
	n := len(p.Steps)
	round, i := k/n, k%n
	period := p.Steps[n-1].After + p.RepeatAfter
	return st.Started.Add(time.Duration(round)*period + p.Steps[i].After)
}

// sorted returns the escalations in the order they started. The caller
// holds mu.
func (e *Engine) sorted() []*State {
	out := make([]*State, 0, len(e.states))
	for _, st := range e.states {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *State) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.Fingerprint, b.Fingerprint)
	})
	return out
}

// call is one call to place.
type call struct {
	fp     string
	text   string
	person Person
	step   int
}

// tick runs the due steps of one escalation (fp) or all (fp ""). The
// caller holds tickMu.
func (e *Engine) tick(ctx context.Context, now time.Time, fp string) {
	var todo []call
	var changed []string
	e.mu.Lock()
	for _, st := range e.sorted() {
		if st.Stopped && now.Sub(st.StoppedAt) > keepStopped {
			delete(e.states, st.Fingerprint) // its KV entry expires with the bucket's TTL
			continue
		}
		if st.Stopped || (fp != "" && st.Fingerprint != fp) {
			continue
		}
		p, ok := e.sched.policy(st.Policy)
		if !ok {
			e.log.Warn("escalation's policy is gone from the configuration; stopping it", "fingerprint", st.Fingerprint, "policy", st.Policy)
			st.Stopped, st.StoppedAt, st.StopReason = true, now, "policy "+st.Policy+" removed"
			changed = append(changed, st.Fingerprint)
			continue
		}
		// Steps missed (the notifier was down) are run together, and
		// nobody is called twice at once.
		total := len(p.Steps) * (p.Repeat + 1)
		called := map[string]bool{}
		for st.Next < total && !due(st, p, st.Next).After(now) {
			for _, person := range e.sched.resolve(p.Steps[st.Next%len(p.Steps)].Call, now) {
				if !called[person.Name] {
					called[person.Name] = true
					todo = append(todo, call{fp: st.Fingerprint, text: st.Text, person: person, step: st.Next})
				}
			}
			st.Next++
			changed = append(changed, st.Fingerprint)
		}
	}
	e.mu.Unlock()

	for _, c := range todo {
		e.place(ctx, now, c)
	}
	e.persist(ctx, changed...)
}

// place calls one person, unless a quota forbids it, and records the call.
func (e *Engine) place(ctx context.Context, now time.Time, c call) {
	log := e.log.With("fingerprint", c.fp, "person", c.person.Name, "step", c.step+1)
	e.mu.Lock()
	st := e.states[c.fp]
	if st == nil || st.Stopped {
		e.mu.Unlock()
		return // acknowledged while earlier calls of this tick were placed
	}
	why := e.overQuota(st, c.person.Name, now)
	if why != "" {
		st.Suppressed++
		e.mu.Unlock()
		log.Warn("call not placed: quota reached", "quota", why)
		e.reply(ctx, c.fp, fmt.Sprintf("📵 Not calling %s: %s.", e.who(c.person), why))
		return
	}
	rec := Call{Person: c.person.Name, Step: c.step, At: now, Status: phone.StatusQueued}
	st.Calls = append(st.Calls, rec) // counted against quotas even if it fails
	idx := len(st.Calls) - 1
	e.mu.Unlock()

	req := phone.CallRequest{To: c.person.Phone, Say: c.text, Gather: &phone.Gather{}}
	if e.opts.Clips != nil {
		cctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
		u, err := e.opts.Clips.URL(cctx, c.text)
		cancel()
		if err != nil {
			log.Warn("no clip for the call; the provider says the text", "err", err)
		} else {
			req.AudioURL = u
		}
	}
	cctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
	id, err := e.opts.Provider.Call(cctx, req)
	cancel()

	e.mu.Lock()
	if err != nil {
		st.Calls[idx].Status, st.Calls[idx].Err = phone.StatusFailed, err.Error()
	} else {
		st.Calls[idx].ID = id
	}
	e.mu.Unlock()
	if err != nil {
		log.Error("call failed", "err", err)
		e.reply(ctx, c.fp, fmt.Sprintf("📞 Calling %s (step %d) failed: %v", e.who(c.person), c.step+1, err))
		return
	}
	log.Info("calling", "call", id)
	e.reply(ctx, c.fp, fmt.Sprintf("📞 Calling %s (step %d).", e.who(c.person), c.step+1))
}

// overQuota says which quota a call to person would exceed, or "". The
// caller holds mu.
func (e *Engine) overQuota(st *State, person string, now time.Time) string {
	q := e.sched.quotas
	perAlert := 0
	for _, c := range st.Calls {
		if c.Person == person {
			perAlert++
		}
	}
	if perAlert >= q.PerPersonPerAlert {
		return fmt.Sprintf("already called %d times about this alert (quota per_person_per_alert)", perAlert)
	}
	perHour := 0
	for _, s := range e.states {
		for _, c := range s.Calls {
			if c.Person == person && now.Sub(c.At) < time.Hour {
				perHour++
			}
		}
	}
	if perHour >= q.PerPersonPerHour {
		return fmt.Sprintf("already called %d times in the last hour (quota per_person_per_hour)", perHour)
	}
	return ""
}

// who names a person for the thread, mentioning their Slack user.
func (e *Engine) who(p Person) string {
	if p.Slack != "" {
		return fmt.Sprintf("%s (<@%s>)", p.Name, p.Slack)
	}
	return p.Name
}

// HandleAck stops the escalation an acknowledgement (from Slack, the
// phone or the CLI) is about. Acks older than the escalation (about an
// earlier firing) and approvals are ignored.
func (e *Engine) HandleAck(ctx context.Context, ack *wire.Ack) {
	if ack.Action == wire.AckApprove {
		return
	}
	e.tickMu.Lock()
	defer e.tickMu.Unlock()
	reason := fmt.Sprintf("%s by %s via %s", pastTense(ack.Action), ack.By, ack.Via)
	e.stop(ctx, ack.Fingerprint, ack.At, reason, e.opts.Now())
}

// stop ends the escalation of fp for reason. An event dated at (when not
// zero) before the escalation started is about an earlier firing and does
// not stop it. The caller holds tickMu.
func (e *Engine) stop(ctx context.Context, fp string, at time.Time, reason string, now time.Time) {
	e.mu.Lock()
	st := e.states[fp]
	if st == nil || st.Stopped || (!at.IsZero() && at.Before(st.Started)) {
		e.mu.Unlock()
		return
	}
	st.Stopped, st.StoppedAt, st.StopReason = true, now, reason
	calls := len(st.Calls)
	e.mu.Unlock()
	e.log.Info("escalation stopped", "fingerprint", fp, "reason", reason, "calls", calls)
	e.reply(ctx, fp, fmt.Sprintf("✅ Phone escalation stopped: %s (%d call(s) placed).", reason, calls))
	e.persist(ctx, fp)
}

func pastTense(a wire.AckAction) string {
	switch a {
	case wire.AckAcknowledge:
		return "acknowledged"
	case wire.AckResolve:
		return "resolved"
	case wire.AckSilence:
		return "silenced"
	}
	return string(a)
}

// HandleCallEvent records what a provider reported about a call: its
// status, or the key pressed. Keys 1, 2 and 3 acknowledge, resolve or
// silence the alert for an hour: the escalation stops and an Ack is
// published. The reply is said to the caller.
func (e *Engine) HandleCallEvent(ctx context.Context, ev phone.Event) phone.Reply {
	now := e.opts.Now()
	e.mu.Lock()
	st, idx := e.findCall(ev.CallID)
	if st == nil {
		e.mu.Unlock()
		e.log.Warn("event for an unknown call", "event", ev.String())
		return phone.Reply{Say: "This call is about an alert that is no longer escalated. Goodbye."}
	}
	c := &st.Calls[idx]
	fp, person, cluster := st.Fingerprint, e.sched.people[c.Person], st.Cluster
	stopped := st.Stopped
	if ev.Kind == phone.EventStatus {
		prev := c.Status
		if ev.Status != "" {
			c.Status = ev.Status
		}
		e.mu.Unlock()
		e.persist(ctx, fp)
		e.log.Info("call status", "fingerprint", fp, "person", person.Name, "call", ev.CallID, "status", ev.Status)
		if ev.Status.Final() && prev != ev.Status {
			e.reply(ctx, fp, fmt.Sprintf("📞 Call to %s: %s.", e.who(person), describeStatus(ev.Status, c.Digits)))
		}
		return phone.Reply{}
	}

	c.Digits = ev.Digits
	e.mu.Unlock()
	key := phone.ParseKey(ev.Digits)
	e.log.Info("key pressed", "fingerprint", fp, "person", person.Name, "call", ev.CallID, "digits", ev.Digits)
	var action wire.AckAction
	var until time.Time
	switch key {
	case phone.KeyAcknowledge:
		action = wire.AckAcknowledge
	case phone.KeyResolve:
		action = wire.AckResolve
	case phone.KeySilence:
		action, until = wire.AckSilence, now.Add(SilenceFor)
	default:
		e.persist(ctx, fp)
		if ev.Digits == "" {
			e.reply(ctx, fp, fmt.Sprintf("📞 %s answered but pressed no key; the escalation continues.", e.who(person)))
			return phone.Reply{Say: phone.DefaultNoInput}
		}
		e.reply(ctx, fp, fmt.Sprintf("📞 %s pressed %s, which is not in the menu; the escalation continues.", e.who(person), ev.Digits))
		return phone.Reply{Say: "That key is not in the menu. The escalation continues. Goodbye."}
	}
	e.reply(ctx, fp, fmt.Sprintf("📞 %s pressed %s: %s.", e.who(person), ev.Digits, pastTense(action)))
	if !stopped {
		if e.opts.Acks != nil {
			if cluster == "" {
				cluster = e.opts.Cluster
			}
			ack := &wire.Ack{
				Fingerprint: fp, Cluster: cluster, Action: action, By: person.Name, Via: "phone",
				Until: until, At: now, ID: "phone-" + string(ev.CallID) + "-" + ev.Digits,
			}
			if err := e.opts.Acks.PublishAck(ctx, ack); err != nil {
				e.log.Error("publishing the phone acknowledgement failed; the escalation stops here anyway", "fingerprint", fp, "err", err)
			}
		}
		e.tickMu.Lock()
		e.stop(ctx, fp, time.Time{}, fmt.Sprintf("%s by %s via phone", pastTense(action), person.Name), now)
		e.tickMu.Unlock()
	} else {
		e.persist(ctx, fp)
	}
	switch key {
	case phone.KeyResolve:
		return phone.Reply{Say: "Resolved. Thank you, " + person.Name + ". Goodbye."}
	case phone.KeySilence:
		return phone.Reply{Say: "Silenced for one hour. Thank you, " + person.Name + ". Goodbye."}
	}
	return phone.Reply{Say: "Acknowledged. Thank you, " + person.Name + ". Goodbye."}
}

// findCall finds a call by its id. The caller holds mu.
func (e *Engine) findCall(id phone.CallID) (*State, int) {
	if id == "" {
		return nil, 0
	}
	for _, st := range e.states {
		for i := range st.Calls {
			if st.Calls[i].ID == id {
				return st, i
			}
		}
	}
	return nil, 0
}

func describeStatus(s phone.Status, digits string) string {
	switch s {
	case phone.StatusCompleted:
		if digits == "" {
			return "answered, no key pressed"
		}
		return "completed"
	case phone.StatusNoAnswer:
		return "no answer"
	case phone.StatusBusy:
		return "busy"
	case phone.StatusFailed:
		return "failed"
	case phone.StatusCanceled:
		return "canceled"
	}
	return string(s)
}

// persist stores the named escalations; failures are logged (the state in
// memory stays right, and the next change stores it again).
func (e *Engine) persist(ctx context.Context, fps ...string) {
	done := map[string]bool{}
	for _, fp := range fps {
		if done[fp] {
			continue
		}
		done[fp] = true
		e.mu.Lock()
		st := e.states[fp]
		var snap State
		if st != nil {
			snap = *st
			snap.Calls = append([]Call(nil), st.Calls...)
		}
		e.mu.Unlock()
		if st == nil {
			continue
		}
		if err := e.opts.Store.Put(context.WithoutCancel(ctx), &snap); err != nil {
			e.log.Error("storing the escalation failed", "fingerprint", fp, "err", err)
		}
	}
}

// reply posts text in the alert's thread and logs failures.
func (e *Engine) reply(ctx context.Context, fp, text string) {
	if e.opts.Thread == nil {
		return
	}
	if err := e.opts.Thread.PostThreadReply(ctx, fp, text); err != nil {
		e.log.Warn("posting to the alert's thread failed", "fingerprint", fp, "err", err)
	}
}
