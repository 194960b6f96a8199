package analyzer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/bus"

	"github.com/mciv/mciv/analyzer/eval"
)

// StateBucket is the JetStream KV bucket that keeps the state of pending
// and firing alerts across analyzer restarts: one key per alert
// fingerprint, holding its lifecycle and its host's last batch
// (eval.GroupState as JSON); an alert that goes back to inactive is
// deleted, unless a person resolved it: then it stays for the quiet
// window (keep_firing_for) in which it must not fire again, so that a
// restarted analyzer keeps that window too.
const StateBucket = "MCIV_ALERT_STATE"

// Restore opens (creating it if needed) the alert state bucket, restores
// the pending and firing alerts it holds into the rules engine, and from
// then on persists every alert state change, in order after the alert
// publications of the same batch. Run calls it before it subscribes, unless
// Config.NoState is set; a restarted analyzer thus neither re-fires an
// alert that was firing (its state is firing) nor forgets it (it resolves
// normally, with the same StartsAt). It returns how many alerts were
// restored.
func (a *Analyzer) Restore(ctx context.Context) (int, error) {
	kv, err := bus.EnsureKeyValue(ctx, a.js, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "mciv analyzer: pending and firing alerts, by fingerprint",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    a.cfg.StateReplicas,
		// One small JSON value per pending or firing alert: 32 MiB is
		// ~50,000 alerts, far more than the per-host caps allow a fleet
		// to hold. A KV bucket refuses writes when full (it cannot
		// discard old keys); the analyzer keeps a refused write queued
		// and retries it.
		MaxBytes: 32 << 20,
	})
	if err != nil {
		return 0, fmt.Errorf("analyzer: alert state bucket %s: %w", StateBucket, err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, fmt.Errorf("analyzer: listing alert states: %w", err)
	}
	var states []eval.GroupState
	now := a.cfg.Now()
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return 0, fmt.Errorf("analyzer: reading alert state %s: %w", k, err)
		}
		var st eval.GroupState
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			a.log.Warn("unreadable alert state skipped", "key", k, "err", err)
			continue
		}
		if !st.Keep(now) {
			// A quiet window that ended while no analyzer ran.
			if err := kv.Delete(ctx, k, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				a.log.Debug("deleting an ended quiet window failed", "key", k, "err", err)
			}
			continue
		}
		states = append(states, st)
	}
	states = a.overlayQueued(states, now)
	a.mu.Lock()
	n := a.engine.Restore(states)
	for i, c := range a.engine.Active() {
		a.m.activeGauges[i][0].Set(float64(c.Pending))
		a.m.activeGauges[i][1].Set(float64(c.Firing))
	}
	a.mu.Unlock()
	a.outMu.Lock()
	a.kv = kv
	a.outMu.Unlock()
	a.m.restored.Add(float64(n))
	a.log.Info("alert state restored", "bucket", StateBucket, "stored", len(states), "restored", n)
	return n, nil
}

// overlayQueued returns the stored states with the state changes still
// queued (replayed from the outbox's journal: decided by a previous run
// that stopped before it wrote them) applied on top, in order: the
// engine restarts from the last state decided, not the last one stored.
func (a *Analyzer) overlayQueued(states []eval.GroupState, now time.Time) []eval.GroupState {
	a.outMu.Lock()
	defer a.outMu.Unlock()
	idx := map[string]int{}
	for i, st := range states {
		idx[st.Fingerprint] = i
	}
	for _, q := range a.queue {
		if q.state == nil {
			continue
		}
		i, ok := idx[q.state.Fingerprint]
		switch {
		case q.data == nil || !q.state.Keep(now):
			if ok {
				states[i].Fingerprint = "" // deleted
				delete(idx, q.state.Fingerprint)
			}
		case ok:
			states[i] = *q.state
		default:
			idx[q.state.Fingerprint] = len(states)
			states = append(states, *q.state)
		}
	}
	out := states[:0]
	for _, st := range states {
		if st.Fingerprint != "" {
			out = append(out, st)
		}
	}
	return out
}

// enqueueStates queues the persistence of alert state changes, after what
// is already queued. Nothing is queued before Restore has opened the
// bucket.
func (a *Analyzer) enqueueStates(changes []eval.GroupState) {
	if len(changes) == 0 {
		return
	}
	a.outMu.Lock()
	defer a.outMu.Unlock()
	if a.kv == nil {
		return
	}
	now := a.cfg.Now()
	var qs []*queued
	for i := range changes {
		st := changes[i]
		q := &queued{state: &st}
		if st.Keep(now) {
			data, err := json.Marshal(&st)
			if err != nil {
				a.log.Error("cannot encode alert state; not persisted", "rule", st.Rule, "fingerprint", st.Fingerprint, "err", err)
				continue
			}
			q.data = data
		}
		qs = append(qs, q)
	}
	a.push(qs...)
}

// writeState stores or deletes one alert state.
func (a *Analyzer) writeState(ctx context.Context, q *queued) error {
	a.outMu.Lock()
	kv := a.kv
	a.outMu.Unlock()
	st := q.state
	var err error
	if q.data == nil {
		err = kv.Delete(ctx, st.Fingerprint)
	} else {
		_, err = kv.Put(ctx, st.Fingerprint, q.data)
	}
	if err != nil {
		return fmt.Errorf("alert state %s %s: %w", st.Rule, st.Fingerprint, err)
	}
	a.m.stateWrites.Inc()
	return nil
}
