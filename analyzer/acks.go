package analyzer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
// HandleAckMsg. (A Resolve published while no analyzer runs is not
// applied: the alert resolves on its own, by its condition.)
func (a *Analyzer) subscribeAcks(ctx context.Context, nc *nats.Conn) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(wire.AcksWildcard, func(m *nats.Msg) {
		a.HandleAckMsg(ctx, m.Subject, m.Data, m.Header)
	})
	if err != nil {
		return nil, fmt.Errorf("analyzer: subscribe %s: %w", wire.AcksWildcard, err)
	}
	return sub, nil
}

// newAcksRefused is mciv_analyzer_acks_refused_total{reason}, registered
// on reg (once per registry: fleet tests run several analyzers on one).
func newAcksRefused(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := auth.NewAckRefusedCounter("mciv_analyzer_acks_refused_total",
		"Resolve acknowledgements the analyzer refused to act on (unsigned, wrong role, impersonation, wrong cluster), by reason.")
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return c, nil
}

// AcksRefused is how many Resolve acks were refused for reason.
func (a *Analyzer) AcksRefused(reason string) float64 {
	var m dto.Metric
	if err := a.acksRefused.WithLabelValues(reason).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// HandleAckMsg decodes an acknowledgement published on subject and, for a
// Resolve, checks who made it (Config.AckChecker: with auth on, the
// notifier's Slack or phone endpoint, or an operator in its own name)
// before HandleAck. A refused Resolve changes nothing; it is counted,
// logged and audited on wire.ResolveActionSubject. It reports whether
// the alert resolved.
func (a *Analyzer) HandleAckMsg(ctx context.Context, subject string, data []byte, h nats.Header) bool {
	ack, err := wire.DecodeAck(data)
	if err != nil {
		a.log.Debug("ignoring an undecodable acknowledgement", "subject", subject, "err", err)
		return false
	}
	if ack.Action != wire.AckResolve {
		return false
	}
	id, err := a.cfg.AckChecker.Check(subject, data, h, ack)
	if err != nil {
		a.refuseResolve(ctx, subject, ack, id, err)
		return false
	}
	return a.HandleAck(ctx, ack)
}

// refuseResolve counts, logs and audits a Resolve that may not act.
func (a *Analyzer) refuseResolve(ctx context.Context, subject string, ack *wire.Ack, signer auth.Identity, err error) {
	reason := auth.RefusalReason(err)
	a.acksRefused.WithLabelValues(reason).Inc()
	a.log.Warn("resolve refused; the alert stays", "subject", subject, "fingerprint", ack.Fingerprint, "by", ack.By,
		"via", ack.Via, "signer", auth.SignedBy(signer), "reason", reason, "err", err)
	cluster := strings.TrimPrefix(subject, wire.AcksPrefix+".")
	if wire.ValidToken(cluster) != nil {
		return
	}
	a.enqueueAction(&wire.Action{
		ID: "resolve-refused-" + ack.ID, Cluster: cluster, Fingerprint: ack.Fingerprint, Kind: wire.ActionKindResolve,
		Decision: "refused", Reason: err.Error(), At: a.cfg.Now(),
		Evidence: map[string]string{"by": ack.By, "via": ack.Via, "ack_id": ack.ID, "reason": reason,
			"signer": auth.SignedBy(signer), "part": "analyzer"},
	})
	a.tryFlush(ctx)
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
