package analyzer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mciv/mciv/analyzer/eval"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
)

// AnnotationResolvedBy names, on an alert a person resolved (the Resolve
// button or /mciv resolve in Slack), who did and how ("slack:U0ALICE").
const AnnotationResolvedBy = "resolved_by"

// HandleAck acts on an acknowledgement published on MCIV_ACKS: a Resolve
// ends the alert in the analyzer's state (announced as resolved, with
// AnnotationResolvedBy), and the alert does not fire again within its
// rule's keep_firing_for; it fires again after that if the condition
// persists. Other actions, and alerts this analyzer does not hold or that
// are not firing, change nothing. It reports whether the alert resolved.
func (a *Analyzer) HandleAck(ctx context.Context, ack *wire.Ack) bool {
	if ack == nil || ack.Action != wire.AckResolve {
		return false
	}
	now := a.cfg.Now()
	a.mu.Lock()
	rep := a.engine.Resolve(ack.Fingerprint, now)
	if len(rep.Alerts) > 0 {
		for i, c := range a.engine.Active() {
			a.m.activeGauges[i][0].Set(float64(c.Pending))
			a.m.activeGauges[i][1].Set(float64(c.Firing))
		}
	}
	a.mu.Unlock()
	if len(rep.Alerts) == 0 {
		return false
	}
	by := ack.By
	if ack.Via != "" {
		by = ack.Via + ":" + ack.By
	}
	for _, al := range rep.Alerts {
		if al.Annotations == nil {
			al.Annotations = map[string]string{}
		}
		al.Annotations[AnnotationResolvedBy] = by
	}
	a.log.Info("alert resolved by a person", "fingerprint", ack.Fingerprint, "rule", rep.Alerts[0].Rule, "by", by, "ack_id", ack.ID)
	a.enqueue(rep.Alerts)
	a.enqueueStates(rep.Changes)
	a.enqueueAction(resolveAction(ack, rep, by, now))
	a.tryFlush(ctx)
	return true
}

// subscribeAcks feeds the acknowledgements published from now on to
// HandleAck. (A Resolve published while no analyzer runs is not applied:
// the alert resolves on its own, by its condition.)
func (a *Analyzer) subscribeAcks(ctx context.Context, nc *nats.Conn) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(wire.AcksWildcard, func(m *nats.Msg) {
		ack, err := wire.DecodeAck(m.Data)
		if err != nil {
			a.log.Debug("ignoring an undecodable acknowledgement", "subject", m.Subject, "err", err)
			return
		}
		a.HandleAck(ctx, ack)
	})
	if err != nil {
		return nil, fmt.Errorf("analyzer: subscribe %s: %w", wire.AcksWildcard, err)
	}
	return sub, nil
}

// resolveAction is the audit record of a person's resolve: kind resolve,
// decision acted, with who resolved and until when the alert stays quiet.
func resolveAction(ack *wire.Ack, rep eval.Report, by string, now time.Time) *wire.Action {
	al := rep.Alerts[0]
	cluster := al.Labels["cluster"]
	if cluster == "" {
		cluster = ack.Cluster
	}
	act := &wire.Action{
		ID:          "resolve-" + ack.Fingerprint + "-" + strconv.FormatInt(now.UnixNano(), 10),
		Cluster:     cluster,
		Fingerprint: ack.Fingerprint,
		Rule:        al.Rule,
		Kind:        wire.ActionKindResolve,
		Decision:    "acted",
		Outcome:     "resolved",
		Reason:      "resolved by " + by,
		Evidence:    map[string]string{"by": ack.By, "via": ack.Via},
		At:          now,
	}
	if ack.ID != "" {
		act.ID = "resolve-" + ack.ID
		act.Evidence["ack_id"] = ack.ID
	}
	if len(rep.Changes) > 0 {
		if until := rep.Changes[0].Life.SuppressUntil; !until.IsZero() {
			act.Evidence["quiet_until"] = until.UTC().Format(time.RFC3339)
			act.Reason += "; quiet until " + until.UTC().Format(time.RFC3339)
		}
	}
	return act
}

// enqueueAction queues an audit record for MCIV_ACTIONS, after what is
// already queued (the resolved alert and its state).
func (a *Analyzer) enqueueAction(act *wire.Action) {
	data, err := wire.EncodeAction(act)
	if err != nil {
		a.log.Error("cannot encode the resolve audit record; dropped", "fingerprint", act.Fingerprint, "err", err)
		return
	}
	a.outMu.Lock()
	defer a.outMu.Unlock()
	a.push(&queued{action: act, subject: wire.ResolveActionSubject(act.Cluster), data: data})
}
