// Package analyzer runs mciv's anomaly rules on the sample batches that
// collectors publish, and announces alert state changes.
//
// It subscribes to every host's samples subject (core NATS), refuses what
// does not decode or claims to come from another host than its subject
// says, evaluates each batch with the rules (package eval: stats,
// detectors, alert lifecycles; pure) and publishes every firing and
// resolved change to JetStream (stream MCIV_ALERTS, subject
// mciv.alerts.<cluster>.<rule>) with the change's message id, so that a
// change published twice is stored once. A change that cannot be published
// stays queued and is retried, in order.
//
// Around that core:
//   - reload (reload.go): the rules files are re-read on Reload (SIGHUP,
//     wired by internal/app) and when their contents change (polled every
//     ReloadInterval); a reload applies only when every file is valid and
//     keeps the alert state of the rules that did not change;
//   - state (state.go): pending and firing alerts, with their host's last
//     batch, live in the JetStream KV bucket MCIV_ALERT_STATE, written in
//     order after the announcements, and are restored on start, so that a
//     restart neither re-fires nor forgets an alert;
//   - time: alerts run on the batches' own time per host, so clock skew
//     between hosts does not matter; batches far from the analyzer's clock
//     are counted (mciv_analyzer_batches_clock_skewed_total), duplicated
//     and older batches ignored and counted, NaN, infinite and negative
//     counter samples dropped and counted by reason
//     (mciv_analyzer_series_dropped_total); Tick judges hosts that went
//     silent for absence rules.
package analyzer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// DefaultMaxClockSkew is the default Config.MaxClockSkew.
const DefaultMaxClockSkew = 5 * time.Minute

// DefaultReloadInterval is how often the rules files are checked for
// changes.
const DefaultReloadInterval = 5 * time.Second

// Config configures an Analyzer. Rules or RulePaths is required.
type Config struct {
	// Rules are the rules to evaluate. When nil they are loaded from
	// RulePaths.
	Rules *rules.Set
	// RulePaths are the rules files and directories (see rules.LoadFiles)
	// the rules come from. When set, Reload re-reads them and Run checks
	// them for changes every ReloadInterval; a reload applies only when
	// every file is valid.
	RulePaths []string
	// ReloadInterval is how often Run checks RulePaths for changes; zero
	// means DefaultReloadInterval, negative never.
	ReloadInterval time.Duration
	// Now is the clock; nil means time.Now. It stamps when changes were
	// decided and times publish retries. Alert lifecycles run on the
	// batches' own time (see package eval).
	Now func() time.Time
	// GroupIdleTTL is how long an inactive alert group without samples is
	// remembered; zero means eval.DefaultGroupIdleTTL.
	GroupIdleTTL time.Duration
	// Limits caps what one host can make the analyzer hold.
	Limits Limits
	// PublishTimeout bounds one JetStream publish; zero means 5s.
	PublishTimeout time.Duration
	// RetryInterval is the delay before the first retry of a failed
	// publish, doubling up to MaxRetryInterval; zero means 1s and 30s.
	RetryInterval    time.Duration
	MaxRetryInterval time.Duration
	// MaxQueued bounds the changes waiting to be published; zero means
	// 10000. Past it the oldest is dropped and counted.
	MaxQueued int
	// OutboxDir, when set, keeps the changes waiting to be published in
	// a journal there (JournalFile, journal.go), fsynced before they are
	// queued: a crash or kill loses none, the next start publishes them
	// (JetStream dedups by message id what was already stored). Empty:
	// in memory only.
	OutboxDir string
	// MaxClockSkew is how far the end of a batch's interval may be from
	// the analyzer's clock before the batch is counted as skewed (it is
	// evaluated all the same, on its own time); zero means 5m.
	MaxClockSkew time.Duration
	// NoState turns off the persistence of alert state (StateBucket):
	// a restarted analyzer then starts with every alert inactive.
	NoState bool
	// StateReplicas is the replication factor of the state bucket; zero
	// means 1.
	StateReplicas int
	// OnReload, if set, is called with the new rules after each reload
	// that applied (the failover actuator learns of new `actions` so).
	OnReload func(*rules.Set)
	// Fleet runs the analyzer as one member of a group that shares the
	// partitions of the input stream (fleet.go); zero Partitions: every
	// host's batches on core NATS.
	Fleet FleetConfig
	// AckChecker decides which Resolve acks may end an alert (acks.go);
	// nil checks only the cluster (auth off).
	AckChecker *auth.AckChecker
	// DetectorsFile is where a single process analyzer keeps its
	// detectors' state (baselines) across restarts (detectors.go):
	// written on the way out and every DetectorsSaveInterval, loaded at
	// start. Empty: <OutboxDir>/detectors.state when OutboxDir is set,
	// else none. Unused in fleet mode (see FleetConfig.SnapshotInterval).
	DetectorsFile string
	// DetectorsSaveInterval is how often the detectors file is written
	// (0: DefaultDetectorsSaveInterval; negative: only on the way out).
	DetectorsSaveInterval time.Duration
}

// Analyzer evaluates rules on sample batches and publishes alert changes.
// Its methods are safe for concurrent use.
type Analyzer struct {
	cfg         Config
	acksRefused *prometheus.CounterVec // Resolve acks refused, by reason (acks.go)
	js          jetstream.JetStream
	log         *slog.Logger
	m           *metrics
	fm          *fleetMetrics
	// grace holds absence rules after a reconnect or a takeover.
	grace grace
	// fleet is the partition ownership of Run in fleet mode, or nil.
	fleet *fleet

	mu     sync.Mutex // guards engine, set and warned
	engine *eval.Engine
	set    *rules.Set
	warned map[string]bool // rule errors already logged at warning level

	reloadMu sync.Mutex // serialises reloads; guards filesHash
	// filesHash is the hash of the rules files last loaded or rejected.
	filesHash string

	pubMu   sync.Mutex         // held while publishing: one publisher at a time, in order
	outMu   sync.Mutex         // guards queue, backoff, nextTry, kv
	kv      jetstream.KeyValue // the alert state bucket, once Restore opened it
	journal *journal           // the outbox on disk (Config.OutboxDir), or nil
	queue   []*queued
	backoff time.Duration
	nextTry time.Time
	kick    chan struct{} // asks Run to flush soon

	ready     chan struct{}
	readyOnce sync.Once

	detSaved time.Time // when the detectors file was last written (Run's goroutine)

	limMu      sync.Mutex            // guards refusedLog, lastExpire
	refusedLog map[[2]string]refusal // per cluster and host: refusals since the last log line
	lastExpire time.Time
}

// refusal is what was refused of one host since it was last logged.
type refusal struct {
	logged time.Time
	counts map[string]int
}

// New returns an analyzer for cfg.Rules that publishes to js and registers
// its metrics with reg (nil: not registered). logger may be nil.
func New(cfg Config, js jetstream.JetStream, reg prometheus.Registerer, logger *slog.Logger) (*Analyzer, error) {
	var hash string
	if cfg.Rules == nil {
		if len(cfg.RulePaths) == 0 {
			return nil, errors.New("analyzer: no rules")
		}
		hash = hashFiles(cfg.RulePaths)
		set, err := rules.LoadFiles(cfg.RulePaths...)
		if err != nil {
			return nil, fmt.Errorf("analyzer: %w", err)
		}
		cfg.Rules = set
	} else if len(cfg.RulePaths) > 0 {
		hash = hashFiles(cfg.RulePaths)
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if js == nil {
		return nil, errors.New("analyzer: no JetStream")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DetectorsSaveInterval == 0 {
		cfg.DetectorsSaveInterval = DefaultDetectorsSaveInterval
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.MaxRetryInterval < cfg.RetryInterval {
		cfg.MaxRetryInterval = max(30*time.Second, cfg.RetryInterval)
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 10000
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var names []string
	for _, r := range cfg.Rules.Rules() {
		names = append(names, r.Alert)
	}
	m, err := newMetrics(reg, names)
	if err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	fm, err := newFleetMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	acksRefused, err := newAcksRefused(reg)
	if err != nil {
		return nil, fmt.Errorf("analyzer: %w", err)
	}
	cfg.Fleet = cfg.Fleet.withDefaults()
	m.reloadOK.Set(1)
	m.reloadTime.Set(float64(cfg.Now().UnixNano()) / 1e9)
	a := &Analyzer{
		cfg:         cfg,
		acksRefused: acksRefused,
		js:          js,
		log:         logger,
		m:           m,
		fm:          fm,
		engine:      eval.New(cfg.Rules, cfg.evalOptions()),
		set:         cfg.Rules,
		warned:      map[string]bool{},
		filesHash:   hash,
		kick:        make(chan struct{}, 1),
		ready:       make(chan struct{}),

		refusedLog: map[[2]string]refusal{},
	}
	if cfg.OutboxDir != "" {
		if err := a.openOutbox(cfg.OutboxDir); err != nil {
			return nil, err
		}
	}
	a.advise(cfg.Rules)
	return a, nil
}

// advise logs what the rules of set probably get wrong (rules.Set.Advice):
// they run, but an SRE who wrote them should know.
func (a *Analyzer) advise(set *rules.Set) {
	for _, adv := range set.Advice() {
		a.log.Warn("rule probably does not do what it means", "advice", adv.Error())
	}
}

// Rules returns the rule set being evaluated.
func (a *Analyzer) Rules() *rules.Set {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.set
}

// Ready is closed once Run's subscription is in place.
func (a *Analyzer) Ready() <-chan struct{} { return a.ready }

// Run subscribes to every host's sample batches on nc and evaluates them
// until ctx ends, retrying alert publications that failed. On the way out
// it tries once more to publish what is still queued. It returns nil when
// ctx ends, or an error if it could not subscribe.
func (a *Analyzer) Run(ctx context.Context, nc *nats.Conn) error {
	if a.cfg.Fleet.Partitions > 0 {
		return a.runFleet(ctx, nc)
	}
	if !a.cfg.NoState {
		if _, err := a.Restore(ctx); err != nil {
			return err
		}
	}
	// After Restore: the alert groups it recreated get their baselines.
	a.loadDetectorsFile()
	a.detSaved = time.Now()
	sub, err := nc.Subscribe(wire.SamplesWildcard, func(m *nats.Msg) {
		a.HandleBatch(ctx, m.Subject, m.Data)
	})
	if err != nil {
		return fmt.Errorf("analyzer: subscribe %s: %w", wire.SamplesWildcard, err)
	}
	ackSub, err := a.subscribeAcks(ctx, nc)
	if err != nil {
		_ = sub.Unsubscribe()
		return err
	}
	defer func() { _ = ackSub.Unsubscribe() }()
	// FlushWithContext needs a deadline; the run's own context has none.
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	err = nc.FlushWithContext(fctx)
	fcancel()
	if err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("analyzer: subscribe %s: %w", wire.SamplesWildcard, err)
	}
	a.readyOnce.Do(func() { close(a.ready) })
	a.log.Info("analyzer running", "subject", wire.SamplesWildcard, "rules", a.Rules().NumRules())
	return a.loop(ctx, nc, func() {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			a.log.Warn("analyzer: unsubscribe", "err", err)
		}
	})
}

// loop runs the analyzer's periodic work until ctx ends: absence ticks,
// publication retries, rules reloads; then it calls stop and publishes
// what is still queued.
func (a *Analyzer) loop(ctx context.Context, nc *nats.Conn, stop func()) error {
	period := min(a.cfg.RetryInterval, time.Second)
	tick := time.NewTicker(period)
	defer tick.Stop()
	lastTick := time.Now()
	var poll <-chan time.Time
	if len(a.cfg.RulePaths) > 0 && a.cfg.ReloadInterval > 0 {
		pt := time.NewTicker(a.cfg.ReloadInterval)
		defer pt.Stop()
		poll = pt.C
	}
	for {
		select {
		case <-poll:
			_, _ = a.ReloadIfChanged() // logged and exported
		case <-ctx.Done():
			stop()
			if a.cfg.Fleet.Partitions == 0 {
				if err := a.saveDetectorsFile(); err != nil {
					a.log.Warn("analyzer stopping without saving its detector state", "err", err)
				}
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.PublishTimeout)
			if err := a.Flush(fctx); err != nil {
				a.log.Error("analyzer stopping with unpublished alert changes", "queued", a.Queued(), "err", err)
			}
			cancel()
			a.closeOutbox()
			return nil
		case <-tick.C:
			if a.grace.watch(nc, a.cfg.Now(), a.cfg.Fleet.AbsenceGrace) {
				a.fm.graces.Inc()
				a.log.Info("absence rules held after a reconnect", "grace", a.cfg.Fleet.AbsenceGrace)
			}
			a.holdAfterPause(time.Since(lastTick), period)
			lastTick = time.Now()
			a.Tick(ctx)
			a.tryFlush(ctx)
			if a.cfg.Fleet.Partitions == 0 && a.cfg.DetectorsSaveInterval > 0 && time.Since(a.detSaved) >= a.cfg.DetectorsSaveInterval {
				if err := a.saveDetectorsFile(); err != nil {
					a.detSaved = time.Now() // (logged; retried at the next interval)
					a.log.Warn("detector state not saved", "err", err)
				}
			}
		case <-a.kick:
			a.tryFlush(ctx)
		}
	}
}

// HandleBatch evaluates one message received on subject, then publishes
// the alert changes it caused. A message that is not a valid batch from the
// host its subject names is counted in mciv_analyzer_bad_messages_total,
// logged, and changes nothing else.
func (a *Analyzer) HandleBatch(ctx context.Context, subject string, data []byte) {
	if b, missed := a.handle(ctx, subject, data, true); missed > 0 {
		a.countMissed(b.Cluster, b.Host, missed)
	}
}

// countMissed counts n batches of a host that never arrived.
func (a *Analyzer) countMissed(cluster, host string, n uint64) {
	a.fm.missed.WithLabelValues(cluster, host).Add(float64(n))
	a.log.Debug("sample batches missed", "cluster", cluster, "host", host, "missed", n)
}

// handle is HandleBatch; with announce false the batch feeds the rules
// but its alert changes are not published (a replay that warms up
// detectors). It returns the batch, or nil when it was refused, and the
// batches of its host missed just before it (when announce), which the
// caller counts: at once (HandleBatch) or once a partition checkpoint
// holds the host's mark past them (fleet mode), so that a new owner
// replaying from that checkpoint does not count them again.
func (a *Analyzer) handle(ctx context.Context, subject string, data []byte, announce bool) (*wire.Batch, uint64) {
	prefix, cluster, host, err := wire.ParseHostSubject(subject)
	if err == nil && prefix != wire.SamplesPrefix {
		err = fmt.Errorf("subject %q is not a samples subject", subject)
	}
	if err != nil {
		a.refuse(subject, BadSubject, err)
		return nil, 0
	}
	b, err := wire.DecodeBatch(data)
	if err != nil {
		a.refuse(subject, BadDecode, err)
		return nil, 0
	}
	if b.Cluster != cluster || b.Host != host {
		a.refuse(subject, BadForged, fmt.Errorf("batch says cluster %q host %q, its subject cluster %q host %q", b.Cluster, b.Host, cluster, host))
		return nil, 0
	}

	now := a.cfg.Now()
	a.mu.Lock()
	rep, err := a.engine.Eval(b, now)
	if err == nil && rep.Ignored == "" {
		for i, c := range a.engine.Active() {
			a.m.activeGauges[i][0].Set(float64(c.Pending))
			a.m.activeGauges[i][1].Set(float64(c.Firing))
		}
	}
	a.mu.Unlock()
	if err != nil {
		a.refuse(subject, BadInvalid, err)
		return nil, 0
	}
	if rep.Ignored != "" {
		a.m.ignored.WithLabelValues(rep.Ignored).Inc()
		a.log.Debug("sample batch ignored", "subject", subject, "reason", rep.Ignored, "seq", b.Seq)
		return nil, 0
	}
	if rep.Restart {
		a.m.restarts.Inc()
		a.log.Info("collector restarted", "cluster", b.Cluster, "host", b.Host, "seq", b.Seq)
	}
	a.m.batches.Inc()
	a.m.samples.Add(float64(rep.Samples))
	skew := now.Sub(b.Start.Add(b.Interval))
	a.m.delay.Observe(max(0, skew.Seconds()))
	if skew > a.cfg.MaxClockSkew || -skew > a.cfg.MaxClockSkew {
		dir := SkewBehind
		if skew < 0 {
			dir = SkewAhead
		}
		a.m.skewed.WithLabelValues(dir).Inc()
		a.log.Debug("batch far from the analyzer's clock; evaluated on its own time",
			"cluster", b.Cluster, "host", b.Host, "seq", b.Seq, "skew", skew, "direction", dir)
	}
	for reason, n := range rep.Dropped {
		a.m.seriesDropped.WithLabelValues(reason).Add(float64(n))
	}
	if rep.Refused != nil {
		a.refused(b.Cluster, b.Host, rep.Refused, now)
	}
	for _, re := range rep.Errors {
		a.ruleError(ctx, b, re)
	}
	if !announce {
		return b, 0 // (a silent replay re-reads what the previous owner counted)
	}
	// Every host evaluated has its series, at zero until a batch is
	// missed, so that increase() sees the first miss.
	a.fm.missed.WithLabelValues(b.Cluster, b.Host)
	a.enqueue(rep.Alerts)
	a.enqueueStates(rep.Changes)
	a.tryFlush(ctx)
	return b, rep.Missed
}

// Tick judges the silence of hosts that stopped sending, for rules whose
// detectors judge time itself (absence), and publishes what changed. Run
// calls it every second.
func (a *Analyzer) Tick(ctx context.Context) {
	now := a.cfg.Now()
	if a.grace.active(now) {
		return
	}
	a.expire(now)
	a.mu.Lock()
	rep := a.engine.Tick(now)
	if rep.Groups > 0 {
		for i, c := range a.engine.Active() {
			a.m.activeGauges[i][0].Set(float64(c.Pending))
			a.m.activeGauges[i][1].Set(float64(c.Firing))
		}
	}
	a.mu.Unlock()
	for _, re := range rep.Errors {
		a.m.evalErrors.WithLabelValues(re.Rule).Inc()
		a.log.Warn("rule evaluation failed", "rule", re.Rule, "err", re.Err)
	}
	if len(rep.Alerts)+len(rep.Changes) == 0 {
		return
	}
	a.enqueue(rep.Alerts)
	a.enqueueStates(rep.Changes)
	a.tryFlush(ctx)
}

func (a *Analyzer) refuse(subject, reason string, err error) {
	a.m.bad.WithLabelValues(reason).Inc()
	a.log.Warn("refused message on samples subject", "subject", subject, "reason", reason, "err", err)
}

// ruleError counts a failed rule evaluation and logs it, at warning level
// the first time for each rule and message, then at debug level.
func (a *Analyzer) ruleError(ctx context.Context, b *wire.Batch, re eval.RuleError) {
	a.m.evalErrors.WithLabelValues(re.Rule).Inc()
	key := re.Rule + "\x00" + re.Err.Error()
	a.mu.Lock()
	first := !a.warned[key]
	a.warned[key] = true
	a.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	a.log.Log(ctx, level, "rule evaluation failed", "rule", re.Rule, "cluster", b.Cluster, "host", b.Host, "err", re.Err)
}
