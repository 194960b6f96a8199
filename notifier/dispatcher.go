package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	// NotifyTimeout bounds one attempt to deliver one alert to all
	// integrations (an integration may retry inside it). Default 1m.
	NotifyTimeout time.Duration
	// RetryMin and RetryMax bound the delay before a message that some
	// integration failed to deliver is redelivered: it doubles with every
	// delivery, from RetryMin up to RetryMax (longer only if an integration
	// asked for it, e.g. by a rate limit). Defaults 1s and 1m.
	RetryMin, RetryMax time.Duration
	// Now is the clock for the latency metric and for expiring state.
	// Default time.Now.
	Now func() time.Time
	// Muter, when set, is asked about every alert before delivery; an
	// alert it mutes (silenced, inhibited) is acknowledged without being
	// delivered.
	Muter Muter
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
	return c
}

// How long the dispatcher remembers what it delivered for a message: long
// enough to recognise a redelivery of a message whose acknowledgement was
// lost, and, for a message not yet delivered everywhere, long enough to
// outlive any retry delay.
const (
	doneRetention    = 10 * time.Minute
	pendingRetention = 24 * time.Hour
	pruneEvery       = time.Minute
	ackTimeout       = 5 * time.Second
)

// Dispatcher consumes alert state changes from JetStream and delivers each
// to every integration. A message is acknowledged only after every
// integration has delivered it; otherwise it is negatively acknowledged with
// a growing delay and JetStream redelivers it. The dispatcher remembers which
// integrations already delivered a message, so that a redelivery reaches
// only the ones that failed (in memory for now: after a restart a message
// that was not acknowledged goes to every integration again).
//
// Messages are handled one at a time, in stream order; a message that is
// retried may be overtaken by later ones.
type Dispatcher struct {
	cfg          DispatcherConfig
	integrations []Notifier
	logger       *slog.Logger
	metrics      *metrics
	running      atomic.Bool

	// Used only by the goroutine in Run.
	state     map[uint64]*delivery // by stream sequence
	lastPrune time.Time
}

// delivery is what the dispatcher knows about one message of the stream.
type delivery struct {
	delivered []bool // by index into Dispatcher.integrations
	done      bool   // delivered everywhere and acknowledged
	touched   time.Time
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
		state:        make(map[uint64]*delivery),
	}
}

// Run consumes the alerts stream with a durable pull consumer and delivers
// every alert until ctx ends. Then it interrupts the delivery in progress (its
// message goes back to JetStream for immediate redelivery, to a replica or
// the next run), waits until everything it started has stopped, and returns
// nil. Problems with JetStream (the
// stream does not exist yet, the consumer was deleted) are logged and retried
// with backoff; Run returns an error only for an invalid configuration or
// when the NATS connection has been closed for good. Run must not be called
// again while it runs.
func (d *Dispatcher) Run(ctx context.Context, js jetstream.JetStream) error {
	if err := wire.ValidToken(d.cfg.Durable); err != nil {
		return fmt.Errorf("notifier: durable consumer name: %w", err)
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
	d.logger.Info("notifier starting", "stream", bus.AlertsStream, "durable", d.cfg.Durable, "integrations", names)

	wait := d.cfg.RetryMin
	for {
		started := time.Now()
		err := d.consume(ctx, js)
		if ctx.Err() != nil {
			d.logger.Info("notifier stopped")
			return nil
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) {
			return fmt.Errorf("notifier: %w", err)
		}
		if time.Since(started) > d.cfg.RetryMax {
			wait = d.cfg.RetryMin // it worked for a while: start over
		}
		d.logger.Warn("notifier consumer failed; retrying", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			d.logger.Info("notifier stopped")
			return nil
		}
		wait = min(2*wait, d.cfg.RetryMax)
	}
}

// consume creates or binds the durable consumer and handles messages until
// ctx ends or fetching fails.
func (d *Dispatcher) consume(ctx context.Context, js jetstream.JetStream) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.AlertsStream, jetstream.ConsumerConfig{
		Durable:       d.cfg.Durable,
		Description:   "mciv notifier (Marvel)",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.cfg.AckWait,
		MaxDeliver:    d.cfg.MaxDeliver,
		FilterSubject: wire.AlertsWildcard,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on stream %s: %w", d.cfg.Durable, bus.AlertsStream, err)
	}
	// Fetch one message at a time and handle it before fetching the next:
	// a message waiting in a client-side buffer would use up its AckWait
	// (and could be redelivered to a replica meanwhile).
	for ctx.Err() == nil {
		// (A pull request sent after ctx ended could take a message, a
		// nak'd one included, to an inbox nobody reads any more.)
		// A bounded wait: a pull request lost with a NATS node (SIGKILL,
		// leader change) would otherwise be waited on forever.
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			if msg != nil {
				// Fetched as we stopped: let another replica have it now.
				if nerr := msg.Nak(); nerr != nil {
					d.logger.Debug("nak at shutdown failed", "subject", msg.Subject(), "err", nerr)
				}
			}
			return ctx.Err()
		case errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, context.DeadlineExceeded):
			continue // nothing to do for a while; ask again
		case err != nil:
			return fmt.Errorf("consumer %s: next message: %w", d.cfg.Durable, err)
		}
		d.handle(ctx, msg)
	}
	return ctx.Err()
}

// handle delivers one message to the integrations that do not have it yet,
// and acknowledges, naks or terminates it.
func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to acknowledge.
		d.logger.Warn("ignoring a message without JetStream metadata", "subject", msg.Subject(), "err", err)
		return
	}
	seq := meta.Sequence.Stream
	d.metrics.queueDepth.Set(float64(meta.NumPending))
	a, err := wire.DecodeAlert(msg.Data())
	if err != nil {
		reason := badReason(msg.Data())
		d.metrics.badMessages.WithLabelValues(reason).Inc()
		d.metrics.messages.WithLabelValues(outcomeTerminated).Inc()
		d.logger.Warn("dropping a message on the alerts stream that is not an alert",
			"subject", msg.Subject(), "stream_seq", seq, "reason", reason, "err", err)
		if err := msg.TermWithReason("mciv notifier: undecodable alert (" + reason + ")"); err != nil {
			d.logger.Warn("terminating an undecodable message failed; it will be redelivered", "subject", msg.Subject(), "stream_seq", seq, "err", err)
		}
		return
	}

	now := d.cfg.Now()
	d.prune(now)
	st := d.state[seq]
	if st == nil {
		st = &delivery{delivered: make([]bool, len(d.integrations))}
		d.state[seq] = st
	}
	st.touched = now
	log := d.logger.With("subject", msg.Subject(), "stream_seq", seq, "delivery", meta.NumDelivered,
		"rule", a.Rule, "state", a.State, "fingerprint", a.Fingerprint)

	if st.done {
		// Delivered and acknowledged before, but the acknowledgement did
		// not reach JetStream in time: acknowledge again, notify no one.
		d.metrics.messages.WithLabelValues(outcomeDuplicate).Inc()
		log.Info("redelivery of an alert already delivered; acknowledging it again")
		d.ack(ctx, msg, log)
		return
	}

	if d.cfg.Muter != nil {
		reason, err := d.cfg.Muter.Mute(ctx, a)
		if err != nil && ctx.Err() == nil {
			d.metrics.messages.WithLabelValues(outcomeRetry).Inc()
			delay := d.backoff(meta.NumDelivered, 0)
			if nerr := msg.NakWithDelay(delay); nerr != nil {
				log.Warn("nak failed; JetStream redelivers after AckWait", "err", nerr)
			}
			log.Warn("cannot check silences and inhibitions; retrying", "retry_in", delay, "err", err)
			return
		}
		if reason != "" {
			st.done = true
			d.metrics.messages.WithLabelValues(outcomeMuted).Inc()
			d.ack(ctx, msg, log)
			log.Info("alert muted", "reason", reason)
			return
		}
	}

	failed, retryAfter, err := d.deliver(ctx, msg, a, st)
	if len(failed) == 0 {
		st.done = true
		d.metrics.messages.WithLabelValues(outcomeAcked).Inc()
		d.ack(ctx, msg, log)
		log.Debug("alert delivered")
		return
	}

	d.metrics.messages.WithLabelValues(outcomeRetry).Inc()
	if ctx.Err() != nil {
		// Shutting down: let another replica have it right away.
		if nerr := msg.Nak(); nerr != nil {
			log.Warn("nak at shutdown failed; JetStream redelivers after AckWait", "err", nerr)
		}
		log.Info("alert delivery interrupted by shutdown", "pending", failed)
		return
	}
	if d.cfg.MaxDeliver > 0 && meta.NumDelivered >= uint64(d.cfg.MaxDeliver) {
		delete(d.state, seq)
		log.Error("giving up on an alert: delivery limit reached", "failed", failed, "max_deliver", d.cfg.MaxDeliver, "err", err)
		if terr := msg.TermWithReason("mciv notifier: delivery limit reached"); terr != nil {
			log.Warn("terminating a message failed", "err", terr)
		}
		return
	}
	delay := d.backoff(meta.NumDelivered, retryAfter)
	if nerr := msg.NakWithDelay(delay); nerr != nil {
		log.Warn("nak failed; JetStream redelivers after AckWait", "err", nerr)
	}
	if onlyDeferred(err) {
		log.Debug("alert delivery deferred", "pending", failed, "retry_in", delay, "reason", err)
		return
	}
	log.Warn("alert not delivered to every integration; retrying", "failed", failed, "retry_in", delay, "err", err)
}

// deliver runs, in parallel, every integration that has not delivered the
// alert yet and records which succeeded. It returns the names of those that
// failed, the longest RetryAfter any of them asked for, and their errors.
func (d *Dispatcher) deliver(ctx context.Context, msg jetstream.Msg, a *wire.Alert, st *delivery) (failed []string, retryAfter time.Duration, err error) {
	nctx, cancel := context.WithTimeout(ctx, d.cfg.NotifyTimeout)
	defer cancel()
	stopKeepAlive := d.keepAlive(msg)
	defer stopKeepAlive()

	errs := make([]error, len(d.integrations))
	var wg sync.WaitGroup
	for i, n := range d.integrations {
		if st.delivered[i] {
			continue
		}
		wg.Go(func() { errs[i] = d.notify(nctx, n, a) })
	}
	wg.Wait()

	var all []error
	for i, e := range errs {
		if st.delivered[i] {
			continue
		}
		if e == nil {
			st.delivered[i] = true
			continue
		}
		failed = append(failed, d.integrations[i].Name())
		all = append(all, e)
		if ra, ok := errors.AsType[retryAfterError](e); ok {
			retryAfter = max(retryAfter, ra.RetryAfter())
		}
	}
	return failed, retryAfter, errors.Join(all...)
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
func (d *Dispatcher) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(d.cfg.AckWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					d.logger.Debug("in-progress notice failed", "subject", msg.Subject(), "err", err)
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
func (d *Dispatcher) ack(ctx context.Context, msg jetstream.Msg, log *slog.Logger) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		log.Warn("acknowledgement failed; a redelivery will be recognised and not notified again", "err", err)
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

// prune forgets messages delivered long ago and messages that have not been
// seen for very long (deleted from the stream, or handled by a replica).
func (d *Dispatcher) prune(now time.Time) {
	if now.Sub(d.lastPrune) < pruneEvery {
		return
	}
	d.lastPrune = now
	for seq, st := range d.state {
		age := now.Sub(st.touched)
		if (st.done && age > max(doneRetention, 10*d.cfg.AckWait)) || age > pendingRetention {
			delete(d.state, seq)
		}
	}
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
