package analyzer

import (
	"context"
	"fmt"

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
