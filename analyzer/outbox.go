package analyzer

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

// queued is one alert state change waiting to be stored in JetStream:
// an announcement (alert) for MCIV_ALERTS, or a lifecycle state (state)
// for the alert state bucket.
type queued struct {
	alert    *wire.Alert
	state    *eval.GroupState
	action   *wire.Action // an audit record for MCIV_ACTIONS
	subject  string
	data     []byte
	attempts int
}

// enqueue encodes alert state changes and queues them for publication, in
// order. When the queue is full the oldest change is dropped (and counted):
// memory is bounded even if JetStream stays away.
func (a *Analyzer) enqueue(alerts []*wire.Alert) {
	if len(alerts) == 0 {
		return
	}
	a.outMu.Lock()
	defer a.outMu.Unlock()
	for _, al := range alerts {
		data, err := wire.EncodeAlert(al)
		if err != nil {
			a.m.evalErrors.WithLabelValues(al.Rule).Inc()
			a.log.Error("cannot encode alert; dropped", "rule", al.Rule, "fingerprint", al.Fingerprint, "state", al.State, "err", err)
			continue
		}
		a.queue = append(a.queue, &queued{alert: al, subject: wire.AlertSubject(al.Labels["cluster"], al.Rule), data: data})
	}
	a.trimQueue()
}

// trimQueue drops the oldest queued changes beyond MaxQueued. The caller
// holds outMu.
func (a *Analyzer) trimQueue() {
	for len(a.queue) > a.cfg.MaxQueued {
		old := a.queue[0]
		a.queue[0] = nil
		a.queue = a.queue[1:]
		a.m.dropped.Inc()
		if old.action != nil {
			a.log.Error("alert queue full: dropped the oldest unpublished resolve audit record",
				"fingerprint", old.action.Fingerprint, "max_queued", a.cfg.MaxQueued)
		} else if old.alert != nil {
			a.log.Error("alert queue full: dropped the oldest unpublished alert change",
				"rule", old.alert.Rule, "fingerprint", old.alert.Fingerprint, "state", old.alert.State, "max_queued", a.cfg.MaxQueued)
		} else {
			a.log.Error("alert queue full: dropped the oldest unwritten alert state",
				"rule", old.state.Rule, "fingerprint", old.state.Fingerprint, "max_queued", a.cfg.MaxQueued)
		}
	}
	a.m.queued.Set(float64(len(a.queue)))
}

// Flush publishes every queued alert state change now, in order, without
// waiting for a retry delay. It stops at the first failure, keeping that
// change and the ones after it queued, and returns the error.
func (a *Analyzer) Flush(ctx context.Context) error {
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	return a.publishQueued(ctx, true)
}

// tryFlush publishes queued changes unless a retry delay is running or
// another flush is in progress (which then picks up what is queued, or
// the Run loop does on its next tick).
func (a *Analyzer) tryFlush(ctx context.Context) {
	if !a.pubMu.TryLock() {
		select {
		case a.kick <- struct{}{}:
		default:
		}
		return
	}
	defer a.pubMu.Unlock()
	_ = a.publishQueued(ctx, false) // failures are counted, logged and retried
}

// publishQueued publishes the queue from its head. The caller holds pubMu,
// so changes go out one at a time and in order.
func (a *Analyzer) publishQueued(ctx context.Context, force bool) error {
	for {
		a.outMu.Lock()
		if len(a.queue) == 0 {
			a.outMu.Unlock()
			return nil
		}
		if !force && a.cfg.Now().Before(a.nextTry) {
			a.outMu.Unlock()
			return nil
		}
		q := a.queue[0]
		a.outMu.Unlock()

		pctx, cancel := context.WithTimeout(ctx, a.cfg.PublishTimeout)
		var (
			ack *jetstream.PubAck
			err error
		)
		switch {
		case q.state != nil:
			err = a.writeState(pctx, q)
		case q.action != nil:
			ack, err = a.js.Publish(pctx, q.subject, q.data,
				jetstream.WithMsgID(q.action.ID), jetstream.WithExpectStream(bus.ActionsStream))
		default:
			ack, err = a.js.Publish(pctx, q.subject, q.data,
				jetstream.WithMsgID(q.alert.MsgID()), jetstream.WithExpectStream(bus.AlertsStream))
		}
		cancel()

		a.outMu.Lock()
		if err != nil {
			q.attempts++
			a.backoff = min(max(2*a.backoff, a.cfg.RetryInterval), a.cfg.MaxRetryInterval)
			a.nextTry = a.cfg.Now().Add(a.backoff)
			n := len(a.queue)
			a.outMu.Unlock()
			a.m.publishErrors.Inc()
			if q.state != nil {
				a.log.Warn("writing alert state failed; kept for retry", "attempts", q.attempts, "queued", n, "retry_in", a.backoff, "err", err)
				return err
			}
			if q.action != nil {
				a.log.Warn("publishing a resolve to the audit stream failed; kept for retry", "subject", q.subject,
					"fingerprint", q.action.Fingerprint, "attempts", q.attempts, "queued", n, "retry_in", a.backoff, "err", err)
				return fmt.Errorf("publish action %s to %s: %w", q.action.ID, q.subject, err)
			}
			a.log.Warn("publishing alert change failed; kept for retry",
				"subject", q.subject, "rule", q.alert.Rule, "fingerprint", q.alert.Fingerprint, "state", q.alert.State,
				"attempts", q.attempts, "queued", n, "retry_in", a.backoff, "err", err)
			return fmt.Errorf("publish alert %s %s to %s: %w", q.alert.Rule, q.alert.State, q.subject, err)
		}
		if len(a.queue) > 0 && a.queue[0] == q { // unless dropped meanwhile
			a.queue[0] = nil
			a.queue = a.queue[1:]
		}
		a.backoff, a.nextTry = 0, time.Time{}
		a.m.queued.Set(float64(len(a.queue)))
		a.outMu.Unlock()
		if q.state != nil {
			continue
		}
		if q.action != nil {
			a.log.Info("resolve audited", "subject", q.subject, "fingerprint", q.action.Fingerprint, "stream_seq", ack.Sequence, "duplicate", ack.Duplicate)
			continue
		}

		a.m.published.WithLabelValues(string(q.alert.State)).Inc()
		a.log.Info("alert "+string(q.alert.State),
			"rule", q.alert.Rule, "labels", q.alert.Labels, "value", q.alert.Value, "threshold", q.alert.Threshold,
			"starts_at", q.alert.StartsAt, "subject", q.subject, "stream_seq", ack.Sequence, "duplicate", ack.Duplicate)
	}
}

// Queued is the number of alert state changes waiting to be published.
func (a *Analyzer) Queued() int {
	a.outMu.Lock()
	defer a.outMu.Unlock()
	return len(a.queue)
}
