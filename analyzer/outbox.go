package analyzer

import (
	"context"
	"encoding/json"
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
	// id is the change's record in the journal; journaled says it has one.
	id        uint64
	journaled bool
}

// record is q as a journal record.
func (q *queued) record() jrecord {
	switch {
	case q.state != nil:
		return jrecord{ID: q.id, Kind: kindState, Data: q.data, FP: q.state.Fingerprint, Rule: q.state.Rule}
	case q.action != nil:
		return jrecord{ID: q.id, Kind: kindAction, Subject: q.subject, Data: q.data}
	}
	return jrecord{ID: q.id, Kind: kindAlert, Subject: q.subject, Data: q.data}
}

// fromRecord is the queued change a journal record holds.
func fromRecord(rec jrecord) (*queued, error) {
	q := &queued{subject: rec.Subject, data: rec.Data, id: rec.ID, journaled: true}
	switch rec.Kind {
	case kindAlert:
		al, err := wire.DecodeAlert(rec.Data)
		if err != nil {
			return nil, err
		}
		q.alert = al
	case kindAction:
		act, err := wire.DecodeAction(rec.Data)
		if err != nil {
			return nil, err
		}
		q.action = act
	case kindState:
		st := &eval.GroupState{Rule: rec.Rule, Fingerprint: rec.FP}
		if rec.Data != nil {
			if err := json.Unmarshal(rec.Data, st); err != nil {
				return nil, err
			}
		}
		q.state = st
	default:
		return nil, fmt.Errorf("unknown kind %q", rec.Kind)
	}
	return q, nil
}

// openOutbox replays the journal in dir into the queue: the changes a
// previous run decided and JetStream did not acknowledge.
func (a *Analyzer) openOutbox(dir string) error {
	j, pending, bad, err := openJournal(dir)
	if err != nil {
		return err
	}
	if bad > 0 {
		a.log.Warn("analyzer outbox: unreadable journal lines skipped (a write torn by a crash)", "path", j.path, "lines", bad)
	}
	a.outMu.Lock()
	defer a.outMu.Unlock()
	a.journal = j
	for _, rec := range pending {
		q, err := fromRecord(rec)
		if err != nil {
			a.log.Error("analyzer outbox: a journaled change does not decode; dropped", "path", j.path, "kind", rec.Kind, "err", err)
			a.m.dropped.Inc()
			a.journalDone(&queued{id: rec.ID, journaled: true})
			continue
		}
		a.queue = append(a.queue, q)
	}
	a.m.replayed.Add(float64(len(a.queue)))
	a.m.queued.Set(float64(len(a.queue)))
	if len(a.queue) > 0 {
		a.log.Warn("analyzer outbox: publishing changes a previous run decided but did not get stored", "path", j.path, "changes", len(a.queue))
	}
	return nil
}

// push queues changes after what is queued, writing them to the journal
// first. The caller holds outMu. A journal that cannot be written is
// logged; the changes are queued all the same (in memory only).
func (a *Analyzer) push(qs ...*queued) {
	if len(qs) == 0 {
		return
	}
	if a.journal != nil {
		recs := make([]*jrecord, len(qs))
		for i, q := range qs {
			r := q.record()
			recs[i] = &r
		}
		if err := a.journal.add(recs); err != nil {
			a.m.journalErrors.Inc()
			a.log.Error("analyzer outbox: cannot write the journal; changes held in memory only", "changes", len(qs), "err", err)
		} else {
			for i, q := range qs {
				q.id, q.journaled = recs[i].ID, true
			}
		}
	}
	a.queue = append(a.queue, qs...)
	a.trimQueue()
}

// journalDone marks q done in the journal (published or dropped). The
// caller holds outMu.
func (a *Analyzer) journalDone(q *queued) {
	if a.journal == nil || q == nil || !q.journaled {
		return
	}
	q.journaled = false
	err := a.journal.done(q.id, func() []jrecord {
		recs := make([]jrecord, 0, len(a.queue))
		for _, p := range a.queue {
			if p.journaled {
				recs = append(recs, p.record())
			}
		}
		return recs
	})
	if err != nil {
		a.m.journalErrors.Inc()
		a.log.Warn("analyzer outbox: cannot mark a change done in the journal; a restart publishes it again (deduplicated)", "err", err)
	}
}

// closeOutbox closes the journal; what waits stays in it for the next
// start.
func (a *Analyzer) closeOutbox() {
	a.outMu.Lock()
	defer a.outMu.Unlock()
	if a.journal == nil {
		return
	}
	if err := a.journal.close(); err != nil {
		a.log.Warn("analyzer outbox: closing the journal", "err", err)
	}
	if n := len(a.queue); n > 0 {
		a.log.Warn("analyzer outbox: unpublished alert changes kept on disk for the next start", "path", a.journal.path, "changes", n)
	}
	a.journal = nil
}

// enqueue encodes alert state changes and queues them for publication, in
// order. When the queue is full the oldest change is dropped (and counted):
// memory is bounded even if JetStream stays away.
func (a *Analyzer) enqueue(alerts []*wire.Alert) {
	if len(alerts) == 0 {
		return
	}
	var qs []*queued
	for _, al := range alerts {
		data, err := wire.EncodeAlert(al)
		if err != nil {
			a.m.evalErrors.WithLabelValues(al.Rule).Inc()
			a.log.Error("cannot encode alert; dropped", "rule", al.Rule, "fingerprint", al.Fingerprint, "state", al.State, "err", err)
			continue
		}
		qs = append(qs, &queued{alert: al, subject: wire.AlertSubject(al.Labels["cluster"], al.Rule), data: data})
	}
	a.outMu.Lock()
	defer a.outMu.Unlock()
	a.push(qs...)
}

// trimQueue drops the oldest queued changes beyond MaxQueued. The caller
// holds outMu.
func (a *Analyzer) trimQueue() {
	for len(a.queue) > a.cfg.MaxQueued {
		old := a.queue[0]
		a.queue[0] = nil
		a.queue = a.queue[1:]
		a.m.dropped.Inc()
		a.journalDone(old)
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
		if q.state != nil && a.kv == nil {
			if a.fleet == nil {
				// A replayed state waits for Restore to open the bucket.
				a.outMu.Unlock()
				return nil
			}
			// Fleet mode keeps alert state in checkpoints, not the bucket.
			a.queue[0] = nil
			a.queue = a.queue[1:]
			a.journalDone(q)
			a.outMu.Unlock()
			continue
		}
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
		if err != nil && q.state != nil && bus.IsStoreFull(err) {
			// A full state bucket must not hold back the announcements
			// behind: the write is dropped, counted and logged (a restart
			// may then re-announce this alert).
			a.m.stateFailures.Inc()
			a.log.Error("alert state bucket full: state not persisted", "bucket", StateBucket, "rule", q.state.Rule, "fingerprint", q.state.Fingerprint, "err", err)
			err = nil
		}
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
			a.journalDone(q)
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
