package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultDurable is the durable name of the dispatcher's JetStream consumer
// when DispatcherConfig.Durable is empty. Notifier replicas that share it
// share the work; a notifier with another durable gets every alert again.
const DefaultDurable = "mciv-notifier"

// DispatcherConfig tunes a Dispatcher. The zero value is usable.
type DispatcherConfig struct {
	// Durable names the JetStream consumer; it keeps its position (what has
	// been acknowledged) across restarts. Default DefaultDurable.
	Durable string
	// AckWait is how long JetStream waits for an acknowledgement before it
	// redelivers a message. While a message is being delivered the
	// dispatcher tells JetStream it is still working on it every AckWait/3.
	// Default 30s.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one message; 0 or negative means
	// unlimited (the default): an alert is never given up on.
	MaxDeliver int
	// NotifyTimeout bounds one attempt to deliver one alert to one
	// integration (an integration may retry inside it). Default 1m.
	NotifyTimeout time.Duration
	// RetryMin and RetryMax bound the delay before a message that an
	// integration failed to deliver is redelivered to it: it doubles with every
	// delivery, from RetryMin up to RetryMax (longer only if an integration
	// asked for it, e.g. by a rate limit). Defaults 1s and 1m.
	RetryMin, RetryMax time.Duration
	// Now is the clock for the latency metric. Default time.Now. (Retry
	// delays and what lanes remember follow JetStream's real clock.)
	Now func() time.Time
	// Muter, when set, is asked about every alert before delivery; an
	// alert it mutes (silenced, inhibited) is acknowledged without being
	// delivered.
	Muter Muter
	// MaxPending bounds the messages JetStream hands one lane before it
	// acknowledges some (the consumer's MaxAckPending): what a lane holds
	// in memory during an outage of its integration. Default 1000.
	MaxPending int
	// DepthInterval is how often each lane reads its backlog for
	// mciv_notifier_queue_depth. Default 5s.
	DepthInterval time.Duration
	// RetireInterval is how often the dispatcher looks whether the
	// former shared consumer (Durable, from before per-integration
	// lanes) can be deleted: once the lanes have taken over its position
	// and it has been idle for one interval. Default 1m.
	RetireInterval time.Duration
}

// Muter decides whether an alert must not be notified: Mute returns the
// reason ("silenced by ...") or "" to deliver it.
type Muter interface {
	Mute(ctx context.Context, a *wire.Alert) (reason string, err error)
}

func (c DispatcherConfig) withDefaults() DispatcherConfig {
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = -1
	}
	if c.NotifyTimeout <= 0 {
		c.NotifyTimeout = time.Minute
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 1000
	}
	if c.DepthInterval <= 0 {
		c.DepthInterval = 5 * time.Second
	}
	if c.RetireInterval <= 0 {
		c.RetireInterval = time.Minute
	}
	return c
}

// How long a lane remembers what it delivered: long enough to recognise a
// redelivery of a message whose acknowledgement was lost.
const (
	doneRetention = 10 * time.Minute
	pruneEvery    = time.Minute
	ackTimeout    = 5 * time.Second
)

// Dispatcher consumes alert state changes from JetStream and delivers each
// to every integration. Every integration has its own lane: its own durable
// JetStream consumer (named Durable-<integration>, e.g. mciv-notifier-slack)
// with its own acknowledgements, retries and backlog, so that one
// integration's outage (Slack answering 503 for ten minutes) delays only
// that integration: the voice clip and the phone escalation of every alert
// behind go on as if Slack were up.
//
// Within a lane a message is acknowledged once the integration delivered
// it; otherwise it is negatively acknowledged with a growing delay and
// JetStream redelivers it, while later messages go on. The changes of one
// alert (by fingerprint) reach an integration in stream order: a message
// whose alert has an earlier change still pending in the lane waits for it.
// What a lane holds is bounded: JetStream hands it at most MaxPending
// unacknowledged messages, and it remembers at most a few times as many.
// The backlog of each lane is exported as
// mciv_notifier_queue_depth{integration}.
type Dispatcher struct {
	cfg          DispatcherConfig
	integrations []Notifier
	logger       *slog.Logger
	metrics      *metrics
	running      atomic.Bool
	consuming    atomic.Int32 // lanes whose durable consumer is bound
}

// NewDispatcher returns a dispatcher that delivers to integrations. It
// registers its metrics with reg unless reg is nil; logger may be nil.
func NewDispatcher(cfg DispatcherConfig, integrations []Notifier, reg prometheus.Registerer, logger *slog.Logger) *Dispatcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	integrations = append([]Notifier(nil), integrations...)
	return &Dispatcher{
		cfg:          cfg.withDefaults(),
		integrations: integrations,
		logger:       logger,
		metrics:      newMetrics(reg, integrations, logger),
	}
}

// LaneDurable is the name of the durable consumer of the integration
// called name under the dispatcher durable base: base-name, with every
// character a NATS token cannot hold replaced by '_'.
func LaneDurable(base, name string) string {
	return base + "-" + strings.Map(func(r rune) rune {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == 0x7f {
			return '_'
		}
		return r
	}, name)
}

// Lanes returns the durable consumer names the dispatcher uses, one per
// integration (just Durable when there is none).
func (d *Dispatcher) Lanes() []string {
	if len(d.integrations) == 0 {
		return []string{d.cfg.Durable}
	}
	out := make([]string, len(d.integrations))
	for i, n := range d.integrations {
		out[i] = LaneDurable(d.cfg.Durable, n.Name())
	}
	return out
}

// Run consumes the alerts stream, one durable pull consumer per
// integration, and delivers every alert until ctx ends. Then each lane
// interrupts the delivery in progress (its message goes back to JetStream
// for immediate redelivery, to a replica or the next run), Run waits until
// everything it started has stopped, and returns nil. Problems with
// JetStream (the stream does not exist yet, the consumer was deleted) are
// logged and retried with backoff; Run returns an error only for an
// invalid configuration or when the NATS connection has been closed for
// good. Run must not be called again while it runs.
func (d *Dispatcher) Run(ctx context.Context, js jetstream.JetStream) error {
	if err := wire.ValidToken(d.cfg.Durable); err != nil {
		return fmt.Errorf("notifier: durable consumer name: %w", err)
	}
	lanes := d.Lanes()
	for i, l := range lanes {
		if err := wire.ValidToken(l); err != nil {
			return fmt.Errorf("notifier: durable consumer name: %w", err)
		}
		if slices.Contains(lanes[:i], l) {
			return fmt.Errorf("notifier: two integrations named %q would share the consumer %s", d.integrations[i].Name(), l)
		}
	}
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("notifier: dispatcher is already running")
	}
	defer d.running.Store(false)

	names := make([]string, len(d.integrations))
	for i, n := range d.integrations {
		names[i] = n.Name()
	}
	if len(names) == 0 {
		d.logger.Warn("notifier has no integrations: alerts are acknowledged without being delivered anywhere")
	}
	d.logger.Info("notifier starting", "stream", bus.AlertsStream, "durables", lanes, "integrations", names)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	existing := d.existingConsumers(ctx, js, lanes)
	errs := make([]error, len(lanes))
	var wg sync.WaitGroup
	for i, durable := range lanes {
		var n Notifier
		if len(d.integrations) > 0 {
			n = d.integrations[i]
		}
		l := d.newLane(durable, n, existing, i == 0)
		wg.Go(func() {
			if errs[i] = l.run(ctx, js); errs[i] != nil {
				cancel() // the connection is gone: stop every lane
			}
		})
	}
	wg.Go(func() { d.retire(ctx, js) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.logger.Info("notifier stopped")
	return nil
}

// Ready reports whether Run consumes the alerts stream through every
// lane's durable consumer; the error says how many are bound so far.
func (d *Dispatcher) Ready() error {
	if !d.running.Load() {
		return errors.New("notifier: dispatcher not running")
	}
	want := len(d.Lanes())
	if n := int(d.consuming.Load()); n < want {
		return fmt.Errorf("notifier: %d of %d consumers on %s bound", n, want, bus.AlertsStream)
	}
	return nil
}

// lane delivers the alerts stream to one integration (or, with none, only
// acknowledges it) through its own durable consumer.
type lane struct {
	d       *Dispatcher
	n       Notifier // nil: acknowledge everything
	name    string   // the integration's name, for logs and metrics
	durable string
	// existing holds, for each other consumer of the dispatcher (its
	// former single consumer, the other lanes) that existed when Run
	// started, the first stream sequence it has not acknowledged.
	existing map[string]uint64
	first    bool // the first lane: counts what every lane sees alike
	log      *slog.Logger

	// Used only by the lane's goroutine.
	done      map[uint64]bool // delivered (or muted) and acknowledged
	doneOrder []uint64        // done's keys, oldest first (bounded)
	pending   map[string][]*pendingMsg
	lastPrune time.Time
}

// pendingMsg is a message of the lane not yet delivered: failed, deferred,
// or waiting for an earlier change of its alert.
type pendingMsg struct {
	seq    uint64
	expect time.Time // when JetStream should hand it over again (real time)
}

func (d *Dispatcher) newLane(durable string, n Notifier, existing map[string]uint64, first bool) *lane {
	name := "none"
	if n != nil {
		name = n.Name()
	}
	others := make(map[string]uint64, len(existing))
	for k, v := range existing {
		if k != durable {
			others[k] = v
		}
	}
	return &lane{
		d: d, n: n, name: name, durable: durable, existing: others, first: first,
		log:     d.logger.With("integration", name, "durable", durable),
		done:    make(map[uint64]bool),
		pending: make(map[string][]*pendingMsg),
	}
}

// existingConsumers returns, for each of names (and the dispatcher's own
// durable) that exists now, the first stream sequence it has not
// acknowledged. Errors count as "does not exist".
func (d *Dispatcher) existingConsumers(ctx context.Context, js jetstream.JetStream, names []string) map[string]uint64 {
	out := make(map[string]uint64)
	for _, name := range append([]string{d.cfg.Durable}, names...) {
		c, err := js.Consumer(ctx, bus.AlertsStream, name)
		if err != nil {
			continue
		}
		if info := c.CachedInfo(); info != nil {
			out[name] = info.AckFloor.Stream + 1
		}
	}
	return out
}

// run consumes until ctx ends, re-creating the consumer after failures.
func (l *lane) run(ctx context.Context, js jetstream.JetStream) error {
	cfg := l.d.cfg
	wait := cfg.RetryMin
	for {
		started := time.Now()
		err := l.consume(ctx, js)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) {
			return fmt.Errorf("notifier: %s: %w", l.durable, err)
		}
		if time.Since(started) > cfg.RetryMax {
			wait = cfg.RetryMin // it worked for a while: start over
		}
		l.log.Warn("notifier consumer failed; retrying", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, cfg.RetryMax)
	}
}

// consumerConfig is the lane's consumer. A lane created next to existing
// ones (the notifier's former single consumer, or the lanes of the other
// integrations) starts where the furthest behind of them stands instead
// of replaying the whole stream to the new integration.
func (l *lane) consumerConfig(ctx context.Context, js jetstream.JetStream) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       l.durable,
		Description:   "mciv notifier (Marvel): " + l.name,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       l.d.cfg.AckWait,
		MaxDeliver:    l.d.cfg.MaxDeliver,
		MaxAckPending: l.d.cfg.MaxPending,
		FilterSubject: wire.AlertsWildcard,
	}
	if c, err := js.Consumer(ctx, bus.AlertsStream, l.durable); err == nil {
		if info := c.CachedInfo(); info != nil {
			// Exists: keep where it starts (JetStream refuses to change it).
			cfg.DeliverPolicy, cfg.OptStartSeq = info.Config.DeliverPolicy, info.Config.OptStartSeq
		}
		return cfg
	}
	var from uint64
	for _, next := range l.existing {
		if from == 0 || next < from {
			from = next
		}
	}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
		l.log.Info("new notifier lane starts where the existing consumers stand", "stream_seq", from)
	}
	return cfg
}

// consume creates or binds the durable consumer and handles messages until
// ctx ends or fetching fails.
func (l *lane) consume(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.AlertsStream, l.consumerConfig(ctx, js))
	if err != nil {
		return fmt.Errorf("consumer %s on stream %s: %w", l.durable, bus.AlertsStream, err)
	}
	l.d.consuming.Add(1)
	defer l.d.consuming.Add(-1)
	stopDepth := l.watchDepth(ctx, cons)
	defer stopDepth()
	// Fetch one message at a time and handle it before fetching the next:
	// a message waiting in a client-side buffer would use up its AckWait
	// (and could be redelivered to a replica meanwhile).
	for ctx.Err() == nil {
		// (A pull request sent after ctx ended could take a message, a
		// nak'd one included, to an inbox nobody reads any more.)
		// A bounded wait: a pull request lost with a NATS node (SIGKILL,
		// leader change) would otherwise be waited on forever.
		fctx, cancel := context.WithTimeout(ctx, pullWait)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			if msg != nil {
				// Fetched as we stopped: let another replica have it now.
				if nerr := msg.Nak(); nerr != nil {
					l.log.Debug("nak at shutdown failed", "subject", msg.Subject(), "err", nerr)
				}
			}
			return ctx.Err()
		case errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, context.DeadlineExceeded):
			continue // nothing to do for a while; ask again
		case err != nil:
			return fmt.Errorf("consumer %s: next message: %w", l.durable, err)
		}
		l.handle(ctx, msg)
	}
	return ctx.Err()
}

// pullWait bounds one pull request: one lost with a NATS node is
// replaced after at most this long.
const pullWait = 5 * time.Second

// watchDepth sets the lane's queue depth gauge (messages not yet
// acknowledged: waiting, or handed out and not yet delivered) every
// DepthInterval until the returned function is called.
func (l *lane) watchDepth(ctx context.Context, cons jetstream.Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	gauge := l.d.metrics.queueDepth.WithLabelValues(l.name)
	wg.Go(func() {
		t := time.NewTicker(l.d.cfg.DepthInterval)
		defer t.Stop()
		for {
			if info, err := cons.Info(ctx); err == nil {
				gauge.Set(float64(info.NumPending + uint64(info.NumAckPending)))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// handle delivers one message to the lane's integration and acknowledges,
// naks or terminates it.
func (l *lane) handle(ctx context.Context, msg jetstream.Msg) {
	d, m := l.d, l.d.metrics
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to acknowledge.
		l.log.Warn("ignoring a message without JetStream metadata", "subject", msg.Subject(), "err", err)
		return
	}
	seq := meta.Sequence.Stream
	a, err := wire.DecodeAlert(msg.Data())
	if err != nil {
		reason := badReason(msg.Data())
		if l.first {
			m.badMessages.WithLabelValues(reason).Inc()
		}
		m.messages.WithLabelValues(l.name, outcomeTerminated).Inc()
		l.log.Warn("dropping a message on the alerts stream that is not an alert",
			"subject", msg.Subject(), "stream_seq", seq, "reason", reason, "err", err)
		if err := msg.TermWithReason("mciv notifier: undecodable alert (" + reason + ")"); err != nil {
			l.log.Warn("terminating an undecodable message failed; it will be redelivered", "subject", msg.Subject(), "stream_seq", seq, "err", err)
		}
		return
	}

	now := time.Now()
	l.prune(now)
	log := l.log.With("subject", msg.Subject(), "stream_seq", seq, "delivery", meta.NumDelivered,
		"rule", a.Rule, "state", a.State, "fingerprint", a.Fingerprint)

	if l.done[seq] {
		// Delivered and acknowledged before, but the acknowledgement did
		// not reach JetStream in time: acknowledge again, notify no one.
		m.messages.WithLabelValues(l.name, outcomeDuplicate).Inc()
		log.Info("redelivery of an alert already delivered; acknowledging it again")
		l.ack(ctx, msg, log)
		return
	}
	if l.n == nil {
		l.finish(a.Fingerprint, seq)
		m.messages.WithLabelValues(l.name, outcomeAcked).Inc()
		l.ack(ctx, msg, log)
		return
	}
	// Keep the order of one alert's changes: wait for an earlier one.
	if earlier := l.earlier(a.Fingerprint, seq); earlier != nil {
		delay := max(earlier.expect.Sub(now)+d.cfg.RetryMin, d.cfg.RetryMin)
		l.remember(a.Fingerprint, seq, now.Add(delay))
		m.messages.WithLabelValues(l.name, outcomeWaiting).Inc()
		if nerr := msg.NakWithDelay(delay); nerr != nil {
			log.Warn("nak failed; JetStream redelivers after AckWait", "err", nerr)
		}
		log.Debug("waiting for an earlier change of the same alert", "earlier_seq", earlier.seq, "retry_in", delay)
		return
	}

	if d.cfg.Muter != nil {
		reason, err := d.cfg.Muter.Mute(ctx, a)
		if err != nil && ctx.Err() != nil {
			// Shutting down: let another replica have it right away.
			l.forget(a.Fingerprint, seq)
			if nerr := msg.Nak(); nerr != nil {
				log.Warn("nak at shutdown failed; JetStream redelivers after AckWait", "err", nerr)
			}
			return
		}
		if err != nil {
			// Fail open: an alert that could not be checked against
			// silences (a full or unreachable bucket) is delivered, not
			// dropped nor held back; the failure is counted by bucket.
			d.stateFailures(err)
			if reason == "" {
				log.Warn("notifier state incomplete (silences, inhibition or the notification log); delivering anyway", "err", err)
			} else {
				log.Warn("notifier state incomplete; the alert is muted all the same", "reason", reason, "err", err)
			}
		}
		if reason != "" {
			l.finish(a.Fingerprint, seq)
			m.messages.WithLabelValues(l.name, outcomeMuted).Inc()
			l.ack(ctx, msg, log)
			log.Info("alert muted", "reason", reason)
			return
		}
	}

	err = l.deliver(ctx, msg, a)
	if err == nil {
		l.finish(a.Fingerprint, seq)
		m.messages.WithLabelValues(l.name, outcomeAcked).Inc()
		l.ack(ctx, msg, log)
		log.Debug("alert delivered")
		return
	}

	m.messages.WithLabelValues(l.name, outcomeRetry).Inc()
	if ctx.Err() != nil {
		// Shutting down: let another replica have it right away.
		l.forget(a.Fingerprint, seq)
		if nerr := msg.Nak(); nerr != nil {
			log.Warn("nak at shutdown failed; JetStream redelivers after AckWait", "err", nerr)
		}
		log.Info("alert delivery interrupted by shutdown")
		return
	}
	if d.cfg.MaxDeliver > 0 && meta.NumDelivered >= uint64(d.cfg.MaxDeliver) {
		l.forget(a.Fingerprint, seq)
		log.Error("giving up on an alert: delivery limit reached", "max_deliver", d.cfg.MaxDeliver, "err", err)
		if terr := msg.TermWithReason("mciv notifier: delivery limit reached"); terr != nil {
			log.Warn("terminating a message failed", "err", terr)
		}
		return
	}
	var retryAfter time.Duration
	if ra, ok := errors.AsType[retryAfterError](err); ok {
		retryAfter = ra.RetryAfter()
	}
	delay := d.backoff(meta.NumDelivered, retryAfter)
	l.remember(a.Fingerprint, seq, now.Add(delay))
	if nerr := msg.NakWithDelay(delay); nerr != nil {
		log.Warn("nak failed; JetStream redelivers after AckWait", "err", nerr)
	}
	if onlyDeferred(err) {
		log.Debug("alert delivery deferred", "retry_in", delay, "reason", err)
		return
	}
	log.Warn("alert not delivered; retrying", "retry_in", delay, "err", err)
}

// earlier returns a pending message of the alert fp that precedes seq in
// the stream, or nil.
func (l *lane) earlier(fp string, seq uint64) *pendingMsg {
	for _, p := range l.pending[fp] {
		if p.seq < seq {
			return p
		}
	}
	return nil
}

// remember records seq of alert fp as pending until expect.
func (l *lane) remember(fp string, seq uint64, expect time.Time) {
	for _, p := range l.pending[fp] {
		if p.seq == seq {
			p.expect = expect
			return
		}
	}
	l.pending[fp] = append(l.pending[fp], &pendingMsg{seq: seq, expect: expect})
}

// forget drops seq of fp from the pending messages.
func (l *lane) forget(fp string, seq uint64) {
	ps := slices.DeleteFunc(l.pending[fp], func(p *pendingMsg) bool { return p.seq == seq })
	if len(ps) == 0 {
		delete(l.pending, fp)
		return
	}
	l.pending[fp] = ps
}

// finish records seq of fp as delivered.
func (l *lane) finish(fp string, seq uint64) {
	l.forget(fp, seq)
	l.done[seq] = true
	l.doneOrder = append(l.doneOrder, seq)
	if limit := 4 * max(l.d.cfg.MaxPending, 1); len(l.doneOrder) > limit {
		for _, s := range l.doneOrder[:len(l.doneOrder)-limit] {
			delete(l.done, s)
		}
		l.doneOrder = slices.Delete(l.doneOrder, 0, len(l.doneOrder)-limit)
	}
}

// prune forgets pending messages that did not come back long after they
// were due (terminated, deleted from the stream, or handled by a replica)
// and, once their retention has passed, what was delivered.
func (l *lane) prune(now time.Time) {
	if now.Sub(l.lastPrune) < pruneEvery/10 {
		return
	}
	l.lastPrune = now
	grace := 2*l.d.cfg.AckWait + l.d.cfg.RetryMax
	for fp, ps := range l.pending {
		ps = slices.DeleteFunc(ps, func(p *pendingMsg) bool { return now.Sub(p.expect) > grace })
		if len(ps) == 0 {
			delete(l.pending, fp)
		} else {
			l.pending[fp] = ps
		}
	}
}

// deliver runs the lane's integration on a within NotifyTimeout, telling
// JetStream meanwhile that the message is being worked on.
func (l *lane) deliver(ctx context.Context, msg jetstream.Msg, a *wire.Alert) error {
	nctx, cancel := context.WithTimeout(ctx, l.d.cfg.NotifyTimeout)
	defer cancel()
	stopKeepAlive := l.keepAlive(msg)
	defer stopKeepAlive()
	return l.d.notify(nctx, l.n, a)
}

// notify delivers a to one integration and records the result.
func (d *Dispatcher) notify(ctx context.Context, n Notifier, a *wire.Alert) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", n.Name(), err)
			if _, ok := errors.AsType[*DeferError](err); ok {
				d.metrics.notifications.WithLabelValues(n.Name(), resultDeferred).Inc()
				return
			}
			d.metrics.notifications.WithLabelValues(n.Name(), resultFailure).Inc()
			return
		}
		d.metrics.notifications.WithLabelValues(n.Name(), resultSuccess).Inc()
		if !a.At.IsZero() {
			d.metrics.latency.WithLabelValues(n.Name()).Observe(max(d.cfg.Now().Sub(a.At), 0).Seconds())
		}
	}()
	return n.Notify(ctx, a)
}

// keepAlive tells JetStream every AckWait/3 that msg is still being worked
// on, so that it is not redelivered while an integration waits out a rate
// limit. The returned function stops it and waits until it has stopped.
func (l *lane) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(l.d.cfg.AckWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					l.log.Debug("in-progress notice failed", "subject", msg.Subject(), "err", err)
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// ack acknowledges msg and waits for JetStream to confirm, so that a
// dispatcher started right after this one does not get the message again.
// It is not cut short by ctx: the alert has been delivered, and losing the
// acknowledgement would deliver it twice.
func (l *lane) ack(ctx context.Context, msg jetstream.Msg, log *slog.Logger) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn("acknowledgement failed; a redelivery will be recognised and not notified again", "err", err)
	}
}

// stateFailures counts the failed reads and writes of the notifier's
// buckets that err holds (bus.StoreError), by bucket.
func (d *Dispatcher) stateFailures(err error) {
	ses := bus.StoreErrors(err)
	if len(ses) == 0 {
		d.metrics.stateFailures.WithLabelValues("unknown", bus.OpRead).Inc()
		return
	}
	for _, se := range ses {
		d.metrics.stateFailures.WithLabelValues(se.Bucket, se.Op).Inc()
	}
}

// backoff is the delay before the next delivery of a message that has been
// delivered n times: RetryMin doubled n-1 times, at most RetryMax, at least
// what an integration asked for.
func (d *Dispatcher) backoff(n uint64, atLeast time.Duration) time.Duration {
	delay := d.cfg.RetryMin
	for i := uint64(1); i < n && delay < d.cfg.RetryMax; i++ {
		delay *= 2
	}
	return max(min(delay, d.cfg.RetryMax), atLeast)
}

// retryAfterError is an error by which an integration asks for a delay
// before the next attempt (see Notifier).
type retryAfterError interface {
	error
	RetryAfter() time.Duration
}

// DeferError is returned by an integration that will deliver an alert
// later, not because it failed but because it must wait: for group_wait,
// group_interval, or another replica that is sending the same group. The
// dispatcher redelivers the alert after After without counting a failure.
type DeferError struct {
	After  time.Duration
	Reason string
}

// Defer returns a *DeferError.
func Defer(after time.Duration, reason string) error {
	return &DeferError{After: after, Reason: reason}
}

func (e *DeferError) Error() string {
	return fmt.Sprintf("deferred for %s: %s", e.After, e.Reason)
}

// RetryAfter is how long to wait.
func (e *DeferError) RetryAfter() time.Duration { return e.After }

// onlyDeferred reports whether every error joined in err is a deferral.
func onlyDeferred(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyDeferred(e) {
				return false
			}
		}
		return true
	}
	_, ok := errors.AsType[*DeferError](err)
	return ok
}

// badReason classifies a message that wire.DecodeAlert rejected.
func badReason(data []byte) string {
	var probe struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(data, &probe); err != nil || probe.V == nil {
		return reasonMalformed
	}
	if *probe.V != wire.Version {
		return reasonSchemaVersion
	}
	return reasonInvalid
}

// sleep waits for d or until ctx ends; it reports whether it waited all of d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
