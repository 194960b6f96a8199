// Package actuator turns firing alerts into guarded Patroni switchovers.
//
// An alert is a suspicion, not a verdict. For a rule configured to ask for
// failover, the actuator acts only when every safeguard holds, in order:
// the global pause is off; the analyzer sees at least one host of the
// cluster (else it is the one cut off); the alert persisted; Patroni is not
// paused and the alert is about its current leader; the trouble is not
// cluster-wide; enough vantage points other than the primary see it
// degraded (other hosts' samples towards the primary's address, Patroni's
// own view); a healthy candidate within the lag limit exists; the cluster
// is not cooling down; no dry run; a human approved (when the rule asks);
// the actuator holds the cluster's lease in JetStream KV. Holding the
// lease, it re-reads the topology and re-checks everything, starts the
// cooldown atomically, verifies the lease again, and asks the driver for a
// switchover carrying the lease revision as fencing token. Every decision
// is published as a wire.Action on MCIV_ACTIONS.
package actuator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// kvTimeout bounds one KV operation: a bus that does not answer means no
// action, not a hung decision.
const kvTimeout = 5 * time.Second

// Decisions written to wire.Action.Decision.
const (
	DecisionActed           = "acted"
	DecisionRefused         = "refused"
	DecisionDryRun          = "dry_run"
	DecisionPendingApproval = "pending_approval"
)

// Options configures an Actuator.
type Options struct {
	Config Config
	// JS is the JetStream context for the alerts consumer, the KV state and
	// the audit stream; its connection also carries samples and acks.
	JS jetstream.JetStream
	// Drivers maps cluster names to the driver that moves their primary.
	Drivers map[string]failover.Driver
	// Clock defaults to the wall clock.
	Clock Clock
	// Holder identifies this actuator in the lease (default random).
	Holder string
	// Logger defaults to discarding.
	Logger *slog.Logger
	// OnDecision, when set, is called with every decision once its audit
	// record was published (or publishing gave up).
	OnDecision func(wire.Action)
	// Replicas of the streams and buckets it creates or updates (0: 1);
	// 3 on a cluster of three, like every other part's.
	Replicas int
	// Verifier checks the signature of approvals (auth on): an approval
	// counts only when the notifier signed it (or an operator in its own
	// name, with Config.OperatorApprovals). Nil with Secured false is a
	// bus without auth, where any approval with the nonce counts.
	Verifier *auth.Verifier
	// Secured says the bus requires credentials: without a Verifier every
	// approval is then refused (nothing to check signatures against).
	Secured bool
}

// Actuator decides and performs failovers. Create it with New.
type Actuator struct {
	cfg     Config
	js      jetstream.JetStream
	drivers map[string]failover.Driver
	clock   Clock
	holder  string
	// replicas of its streams and buckets.
	replicas int
	log      *slog.Logger
	onDec    func(wire.Action)
	obs      *Observer

	store   *Store
	seq     atomic.Uint64          // numbers decisions for their audit ids
	refused *prometheus.CounterVec // spoofed samples and refused approvals, by reason (trust.go)
	acks    *auth.AckChecker       // who may approve (nil: anyone, auth off)
	metrics *decisionMetrics       // every decision, by cluster, decision and reason (metrics.go)
	running atomic.Bool            // Run consumes the alerts stream

	mu       sync.Mutex
	rules    map[string]Policy            // by alert name; SetRules replaces it
	firing   map[string]map[string]string // cluster → host → rule
	resolved map[string]chan struct{}     // fingerprint → closed on resolve
	locks    map[string]*sync.Mutex       // cluster → one decision at a time
}

// New checks opts and returns an Actuator; Run or Open must follow.
func New(opts Options) (*Actuator, error) {
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.JS == nil {
		return nil, errors.New("actuator: no JetStream")
	}
	a := &Actuator{
		cfg: cfg, js: opts.JS, drivers: opts.Drivers, clock: opts.Clock, holder: opts.Holder, replicas: max(opts.Replicas, 1),
		log: opts.Logger, onDec: opts.OnDecision,
		obs:    NewObserver(cfg.Signals, max(cfg.Window.D(), cfg.SeenWindow.D())),
		firing: map[string]map[string]string{}, resolved: map[string]chan struct{}{},
		locks: map[string]*sync.Mutex{}, rules: map[string]Policy{},
		refused: newRefusedCounter(), metrics: newDecisionMetrics(),
	}
	switch {
	case opts.Verifier != nil:
		a.acks = auth.NewAckChecker(opts.Verifier, cfg.OperatorApprovals)
	case opts.Secured:
		a.acks = auth.NewUnverifiableAckChecker("the actuator has no trust root to verify approvals with (set nats.auth)")
	default:
		a.acks = auth.NewAckChecker(nil, cfg.OperatorApprovals)
	}
	for name := range cfg.Clusters {
		a.metrics.preset(name)
	}
	for name := range opts.Drivers {
		a.metrics.preset(name)
	}
	for name, p := range cfg.Rules {
		a.rules[name] = p
	}
	if a.clock == nil {
		a.clock = realClock{}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.holder == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		a.holder = "actuator-" + hex.EncodeToString(b[:])
	}
	return a, nil
}

// Open creates or opens the KV buckets and the audit streams. Run calls it.
func (a *Actuator) Open(ctx context.Context) error {
	if a.store != nil {
		return nil
	}
	if err := ensureStreams(ctx, a.js, a.replicas); err != nil {
		return fmt.Errorf("actuator: %w", err)
	}
	s, err := OpenStore(ctx, a.js, a.cfg.KVBucket, a.cfg.LeaseTTL.D(), a.replicas)
	if err != nil {
		return fmt.Errorf("actuator: %w", err)
	}
	a.store = s
	return nil
}

// Store returns the actuator's KV state (after Open).
func (a *Actuator) Store() *Store { return a.store }

// Run follows sample batches (to know which hosts it sees and how they see
// each other) and the alerts stream through its own durable consumer, and
// decides on every firing alert of a failover rule, until ctx ends.
func (a *Actuator) Run(ctx context.Context) error {
	if err := a.Open(ctx); err != nil {
		return err
	}
	nc := a.js.Conn()
	sub, err := nc.Subscribe(wire.SamplesWildcard, func(m *nats.Msg) { a.ObserveMsg(m.Subject, m.Data) })
	if err != nil {
		return fmt.Errorf("actuator: subscribe samples: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	cons, err := a.js.CreateOrUpdateConsumer(ctx, bus.AlertsStream, jetstream.ConsumerConfig{
		Durable:       a.cfg.Durable,
		Description:   "mciv failover actuator",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       alertsAckWait(a.cfg.LeaseTTL.D()),
	})
	if err != nil {
		return fmt.Errorf("actuator: alerts consumer: %w", err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex // orders the callback's wg.Add before wg.Wait
		stopped bool
	)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if stopped { // a message delivered while stopping: left to the next actuator
			return
		}
		// Acknowledge first: a decision is never replayed after a crash
		// (no action is the safe side; the cooldown guards the rest).
		_ = m.Ack()
		al, err := wire.DecodeAlert(m.Data())
		if err != nil {
			a.log.Warn("undecodable alert", "subject", m.Subject(), "err", err)
			return
		}
		if !a.track(al) {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Handle(ctx, al)
		}()
	})
	if err != nil {
		return fmt.Errorf("actuator: consume alerts: %w", err)
	}
	a.running.Store(true)
	defer a.running.Store(false)
	a.log.Info("failover actuator running", "holder", a.holder, "rules", len(a.policies()), "dry_run", a.cfg.DryRun)
	<-ctx.Done()
	cc.Stop()
	mu.Lock()
	stopped = true
	mu.Unlock()
	wg.Wait()
	return ctx.Err()
}

// maxAlertsAckWait is the longest an alert delivered to a replica that
// never acknowledges it waits before it goes to another.
const maxAlertsAckWait = 30 * time.Second

// alertsAckWait is how long an alert delivered to a replica that never
// acknowledges it (one that crashed with the delivery in flight: the
// replicas share one durable consumer, and the server may still hand a
// message to a connection that has just died) waits before the server
// gives it to another: maxAlertsAckWait, or a quarter of the lease when
// that is shorter. Every replica acknowledges an alert as it receives it,
// so the wait only ever delays an alert a dead replica swallowed; kept
// well inside the lease, the survivor decides on it while the dead one's
// lease still stands (and is refused by it, as the dead one may have been
// about to act), not at a time that depends on how the lease and this wait
// happen to compare.
func alertsAckWait(leaseTTL time.Duration) time.Duration {
	return min(maxAlertsAckWait, leaseTTL/4)
}

// Observe records a sample batch as received now.
func (a *Actuator) Observe(b *wire.Batch) { a.obs.Observe(b, a.clock.Now()) }

// track updates which hosts have alerts firing and reports whether al is a
// firing alert of a failover rule.
func (a *Actuator) track(al *wire.Alert) bool {
	cluster, host := al.Labels["cluster"], al.Labels["host"]
	a.mu.Lock()
	defer a.mu.Unlock()
	hosts := a.firing[cluster]
	if hosts == nil {
		hosts = map[string]string{}
		a.firing[cluster] = hosts
	}
	switch al.State {
	case wire.StateFiring:
		if host != "" {
			hosts[host] = al.Rule
		}
		if ch, ok := a.resolved[al.Fingerprint]; !ok || isClosed(ch) {
			a.resolved[al.Fingerprint] = make(chan struct{})
		}
	case wire.StateResolved:
		if host != "" && hosts[host] == al.Rule {
			delete(hosts, host)
		}
		// Keep the closed channel: a decision still waiting for this alert
		// to persist sees that it resolved, whatever the order.
		if ch, ok := a.resolved[al.Fingerprint]; ok && !isClosed(ch) {
			close(ch)
		} else if !ok {
			ch := make(chan struct{})
			close(ch)
			a.resolved[al.Fingerprint] = ch
		}
		return false
	}
	_, ok := a.rules[al.Rule] // a.mu is held
	return ok
}

// SetRules replaces the policies of the rules acted on (Config.Rules), as
// when the analyzer reloaded its rules: alerts of a rule no longer listed
// are ignored from now on, those of a new one acted on. Decisions under
// way keep the policy they started with.
func (a *Actuator) SetRules(rules map[string]Policy) {
	cp := make(map[string]Policy, len(rules))
	for name, p := range rules {
		cp[name] = p
	}
	a.mu.Lock()
	a.rules = cp
	a.mu.Unlock()
	a.log.Info("failover rules updated", "rules", len(cp))
}

// policy returns the policy of the rule named, if it is acted on.
func (a *Actuator) policy(rule string) (Policy, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.rules[rule]
	return p, ok
}

func (a *Actuator) policies() map[string]Policy {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rules
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// resolvedCh returns the channel closed when the alert resolves.
func (a *Actuator) resolvedCh(fp string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.resolved[fp]
	if ch == nil {
		ch = make(chan struct{})
		a.resolved[fp] = ch
	}
	return ch
}

// Track records an alert state change without deciding (tests and callers
// that feed alerts themselves); it reports whether Handle should be called.
func (a *Actuator) Track(al *wire.Alert) bool { return a.track(al) }

func (a *Actuator) clusterLock(cluster string) *sync.Mutex {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.locks[cluster]
	if l == nil {
		l = &sync.Mutex{}
		a.locks[cluster] = l
	}
	return l
}

func (a *Actuator) firingIn(cluster string, except string) map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]string{}
	for h, r := range a.firing[cluster] {
		if h != except {
			out[h] = r
		}
	}
	return out
}

// decision accumulates one wire.Action.
type decision struct {
	act   wire.Action
	start time.Time
}

// Handle decides on one firing alert (already passed to Track) and returns
// the audit record it published. It blocks while the alert persists, while
// waiting for approval, and while the driver works.
func (a *Actuator) Handle(ctx context.Context, al *wire.Alert) wire.Action {
	d := a.decide(ctx, al)
	d.act.Duration = a.clock.Now().Sub(d.start)
	a.publish(ctx, &d.act)
	return d.act
}

func (a *Actuator) decide(ctx context.Context, al *wire.Alert) *decision {
	cluster, host := al.Labels["cluster"], al.Labels["host"]
	policy, _ := a.policy(al.Rule)
	d := &decision{start: a.clock.Now(), act: wire.Action{
		Cluster: cluster, Fingerprint: al.Fingerprint, Rule: al.Rule, Kind: string(failover.ActionSwitchover),
		From: host, Evidence: map[string]string{
			"alert_value": strconv.FormatFloat(al.Value, 'g', 4, 64),
			"alert_score": strconv.FormatFloat(al.Score, 'g', 3, 64),
		},
	}}
	if al.Baseline != 0 {
		d.act.Evidence["alert_baseline"] = strconv.FormatFloat(al.Baseline, 'g', 4, 64)
	}
	refused := func(g Safeguard, detail string) *decision {
		d.act.Decision, d.act.Safeguard = DecisionRefused, string(g)
		d.act.Reason = fmt.Sprintf("not switching over %s from %s: %s", cluster, host, detail)
		return d
	}
	drv, ok := a.drivers[cluster]
	if !ok || cluster == "" || host == "" {
		return refused(GuardTopology, fmt.Sprintf("no failover driver configured for cluster %q (or the alert lacks cluster/host labels)", cluster))
	}
	if a.store == nil {
		return refused(GuardLease, "the actuator's KV state is not open")
	}

	// Wait until the alert persisted, unless it resolves first.
	resolved := a.resolvedCh(al.Fingerprint)
	if wait := al.StartsAt.Add(a.cfg.Persist.D()).Sub(a.clock.Now()); wait > 0 {
		select {
		case <-ctx.Done():
			return refused(GuardPersistence, "the actuator stopped before the alert persisted")
		case <-resolved:
			return refused(GuardPersistence, fmt.Sprintf("the alert resolved before it persisted for %s", a.cfg.Persist.D()))
		case <-a.clock.After(wait):
		}
	}

	lock := a.clusterLock(cluster)
	lock.Lock()
	defer lock.Unlock()

	approved := false
	for {
		p, r, _ := a.check(ctx, drv, al, d.act.Evidence)
		if r != nil && r.Guard == GuardVantage {
			// Corroboration may still be arriving: look again until the
			// evidence deadline, unless the alert resolves.
			deadline := al.StartsAt.Add(a.cfg.Persist.D() + a.cfg.EvidenceWait.D())
			if wait := deadline.Sub(a.clock.Now()); wait > 0 {
				select {
				case <-ctx.Done():
				case <-resolved:
					return refused(GuardPersistence, "the alert resolved while corroboration was awaited")
				case <-a.clock.After(min(wait, a.cfg.Recheck.D())):
					continue
				}
			}
		}
		if r != nil {
			return refused(r.Guard, r.Detail)
		}
		d.act.From, d.act.To = p.FromHost, p.ToHost
		what := fmt.Sprintf("%s from %s to %s: %s, confirmed by %s", cluster, p.FromHost, p.ToHost,
			describe(al, a.clock.Now()), joinAnd(p.Vantage))
		if a.cfg.DryRun || policy.DryRun {
			d.act.Decision = DecisionDryRun
			d.act.Reason = "dry run: would switch over " + what
			return d
		}
		if policy.Approval && !approved {
			ok, detail, signer := a.awaitApproval(ctx, al, what)
			if !ok {
				return refused(GuardApproval, detail)
			}
			d.act.Evidence["approved_by"] = detail
			d.act.Evidence["approval_signed_by"] = signer
			approved = true
			continue // re-check everything after the wait
		}
		return a.act(ctx, drv, al, p, what, d, refused)
	}
}

// check gathers the view and applies every I/O-free safeguard plus the
// global pause and the cooldown. It returns the cooldown's revision.
func (a *Actuator) check(ctx context.Context, drv failover.Driver, al *wire.Alert, ev map[string]string) (plan, *refusal, uint64) {
	cluster, host := al.Labels["cluster"], al.Labels["host"]
	kctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	if p, err := a.store.Paused(kctx); err != nil || p.Paused {
		if err != nil {
			return plan{}, refuse(GuardPause, "cannot read the global pause (%v); doing nothing", err), 0
		}
		return plan{}, refuse(GuardPause, "failover is paused globally by %s: %s", orDash(p.By), orDash(p.Reason)), 0
	}
	if isClosed(a.resolvedCh(al.Fingerprint)) {
		return plan{}, refuse(GuardPersistence, "the alert has resolved"), 0
	}
	now := a.clock.Now()
	v := view{now: now, alert: al, seen: a.obs.Seen(cluster, now.Add(-a.cfg.SeenWindow.D())),
		firing: a.firingIn(cluster, host)}
	// Without any host in sight, or before the alert persisted, do not
	// even ask the manager.
	if len(v.seen) == 0 || now.Sub(al.StartsAt) < a.cfg.Persist.D() {
		_, r := evaluate(&a.cfg, v, ev)
		return plan{}, r, 0
	}
	top, err := drv.Topology(ctx)
	if err != nil {
		return plan{}, refuse(GuardTopology, "cannot read the cluster's topology from %s: %v", drv.Name(), err), 0
	}
	v.top = top
	since := now.Add(-a.cfg.Window.D())
	portToo := a.cfg.PeerMatch == "addr_port"
	var addr string
	if l, ok := top.Leader(); ok {
		addr = joinHostPort(l.Host, l.Port)
	}
	v.toward = a.obs.DegradedTowards(cluster, addr, portToo, since)
	v.own = map[string]int{}
	for _, h := range v.seen {
		v.own[h] = a.obs.DegradedAny(cluster, h, addr, portToo, since)
	}
	p, r := evaluate(&a.cfg, v, ev)
	if r != nil {
		return p, r, 0
	}
	cd, rev, err := a.store.Cooldown(kctx, cluster)
	if err != nil {
		return p, refuse(GuardCooldown, "cannot read the cooldown (%v); doing nothing", err), 0
	}
	if rev != 0 && now.Before(cd.Until) {
		return p, refuse(GuardCooldown, "%s acted on it at token %d; cooling down until %s",
			orDash(cd.ActionID), cd.FencingToken, cd.Until.UTC().Format(time.RFC3339)), 0
	}
	return p, nil, rev
}

// act takes the lease, re-verifies, starts the cooldown and calls the driver.
func (a *Actuator) act(ctx context.Context, drv failover.Driver, al *wire.Alert, p plan, what string,
	d *decision, refused func(Safeguard, string) *decision) *decision {
	cluster := p.Cluster
	leaseAt := a.clock.Now()
	kctx, kcancel := context.WithTimeout(ctx, kvTimeout)
	token, err := a.store.Acquire(kctx, cluster, LeaseInfo{Holder: a.holder, At: leaseAt})
	kcancel()
	if err != nil {
		return refused(GuardLease, fmt.Sprintf("cannot take the actuator lease: %v", err))
	}
	d.act.FencingToken = token
	d.act.Evidence["lease_holder"] = a.holder
	d.act.Evidence["lease_acquired_rev"] = strconv.FormatUint(token, 10)
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := a.store.Release(rctx, cluster, token); err != nil {
			a.log.Warn("lease not released; it expires by itself", "cluster", cluster, "err", err)
		}
	}()

	// Lock, then re-verify, then act.
	p2, r, coolRev2 := a.check(ctx, drv, al, d.act.Evidence)
	if r != nil {
		return refused(r.Guard, "on re-check under the lease: "+r.Detail)
	}
	if p2.From != p.From || p2.To != p.To {
		return refused(GuardTopology, fmt.Sprintf("the plan changed on re-check (%s→%s, now %s→%s)", p.From, p.To, p2.From, p2.To))
	}
	actionID := actionID(al, DecisionActed, token)
	kctx, kcancel = context.WithTimeout(ctx, kvTimeout)
	defer kcancel()
	coolRev3, err := a.store.StartCooldown(kctx, cluster, CooldownInfo{
		Until: a.clock.Now().Add(a.cfg.Cooldown.D()), ActionID: actionID, FencingToken: token,
	}, coolRev2)
	if err != nil {
		return refused(GuardCooldown, fmt.Sprintf("another action started the cooldown first (%v)", err))
	}
	clear := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := a.store.ClearCooldown(cctx, cluster, coolRev3); err != nil {
			a.log.Warn("cooldown not cleared after a refused action", "cluster", cluster, "err", err)
		}
	}
	// Self-fence on our own clock, then confirm the lease with the server.
	budget := a.cfg.LeaseTTL.D() - a.cfg.LeaseMargin.D() - a.clock.Now().Sub(leaseAt)
	if budget <= 0 {
		clear()
		return refused(GuardLease, "the lease is too close to expiry to act under it")
	}
	// Renew by compare-and-set: proof from the server that the lease is
	// still ours, and the newest revision becomes the fencing token.
	token, err = a.store.Renew(kctx, cluster, token, LeaseInfo{Holder: a.holder, At: a.clock.Now()})
	if err != nil {
		clear()
		return refused(GuardLease, fmt.Sprintf("the lease could not be confirmed before acting: %v", err))
	}
	d.act.FencingToken = token
	dctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	req := failover.Request{
		Cluster: cluster, From: p.From, To: p.To, FencingToken: token,
		Reason: "mciv " + al.Rule + " " + al.Fingerprint, MaxLagBytes: a.cfg.MaxLagBytes,
	}
	a.log.Info("switching over", "cluster", cluster, "from", p.From, "to", p.To, "token", token)
	res, err := drv.Switchover(dctx, req)
	d.act.Outcome = string(failover.OutcomeOf(err))
	if res.Detail != "" {
		d.act.Evidence["driver_detail"] = res.Detail
	}
	if res.NewLeader != "" {
		d.act.Evidence["new_leader"] = res.NewLeader
	}
	d.act.Evidence["driver_duration"] = res.Duration.Round(time.Millisecond).String()
	if err != nil {
		d.act.Evidence["driver_error"] = err.Error()
	}
	switch failover.OutcomeOf(err) {
	case failover.OutcomeSucceeded:
		d.act.Decision = DecisionActed
		d.act.Reason = "switching over " + what
	case failover.OutcomeNotAttempted:
		clear()
		d.act.Outcome = string(failover.OutcomeNotAttempted)
		return refused(GuardDriver, fmt.Sprintf("%s refused the switchover to %s: %v", drv.Name(), p.ToHost, err))
	default:
		d.act.Decision = DecisionActed
		d.act.Safeguard = string(GuardDriver)
		d.act.Reason = fmt.Sprintf("switchover of %s (outcome %s, cooling down; no retry): %v",
			what, failover.OutcomeOf(err), err)
	}
	return d
}

// publish writes the audit record, retrying while the bus is away, and
// calls OnDecision.
func (a *Actuator) publish(ctx context.Context, act *wire.Action) {
	act.At = a.clock.Now()
	if act.ID == "" {
		// Unique per decision; a retried publish of it is stored once.
		act.ID = fmt.Sprintf("%s-%s-%s-%d-%s-%d", act.Fingerprint, act.Decision, act.Safeguard, act.FencingToken,
			a.holder, a.seq.Add(1))
	}
	a.log.Info("failover decision", "cluster", act.Cluster, "decision", act.Decision, "safeguard", act.Safeguard,
		"outcome", act.Outcome, "token", act.FencingToken, "reason", act.Reason)
	data, err := wire.EncodeAction(act)
	if err == nil {
		// Keep trying for a while even when ctx ended: the audit matters.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err = publishRetry(pctx, a.js, wire.ActionSubject(act.Cluster), data, act.ID)
		cancel()
	}
	if err != nil {
		a.log.Error("audit record not published", "id", act.ID, "err", err)
	}
	a.metrics.count(act)
	if a.onDec != nil {
		a.onDec(*act)
	}
}

// Ready reports whether Run consumes the alerts stream (its durable
// consumer bound, its KV state open).
func (a *Actuator) Ready() error {
	if !a.running.Load() {
		return errors.New("failover actuator: not consuming " + bus.AlertsStream + " yet")
	}
	return nil
}

func publishRetry(ctx context.Context, js jetstream.JetStream, subject string, data []byte, id string) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.Publish(actx, subject, data, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return nil
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("publish %s: %w (last error: %w)", subject, ctx.Err(), err)
		case <-t.C:
		}
	}
}

func actionID(al *wire.Alert, decision string, token uint64) string {
	return fmt.Sprintf("%s-%d-%s-%d", al.Fingerprint, al.StartsAt.UnixNano(), decision, token)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ensureStreams creates the shared streams only when one is missing: on a
// bus with permissions the actuator's role may look them up but not
// create or update them (they are provisioned by an admin).
func ensureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, name := range []string{bus.AlertsStream, bus.ActionsStream, bus.AcksStream} {
		if _, err := js.Stream(ctx, name); err != nil {
			return bus.EnsureStreams(ctx, js, bus.StreamOptions{Replicas: replicas})
		}
	}
	return nil
}
