package actuator

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Reasons a sample or an approval is refused (the reason label of
// mciv_failover_refused_total).
const (
	RefusedSpoofedSample = "spoofed_sample"    // payload host or cluster differs from the subject's
	RefusedBadSample     = "bad_sample"        // not a samples subject, or undecodable
	RefusedNonce         = "approval_nonce"    // no nonce, or not the pending approval's: hand-published or replayed
	RefusedApprover      = "approval_approver" // the approver is not listed
	RefusedAge           = "approval_age"      // pressed before the request or too long ago
	// Signatures (auth on, auth.AckChecker): who made the approval.
	RefusedUnsigned      = "approval_unsigned"      // unsigned, badly signed or foreign: hand-published
	RefusedRole          = "approval_role"          // signed by a role that may not approve
	RefusedImpersonation = "approval_impersonation" // an operator approving in someone else's name
	RefusedCluster       = "approval_cluster"       // for another cluster than its subject's or its signer's
)

// ackRefusal maps auth's reasons to the actuator's.
var ackRefusal = map[string]string{
	auth.AckUnsigned: RefusedUnsigned, auth.AckRole: RefusedRole,
	auth.AckImpersonation: RefusedImpersonation, auth.AckCluster: RefusedCluster,
}

// DecisionApprovalRefused is the audit decision of a refused approval.
const DecisionApprovalRefused = "approval_refused"

// clockSkew is how far an approval's time may lie ahead of the actuator's.
const clockSkew = time.Minute

func newRefusedCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_failover_refused_total",
		Help: "Samples the actuator did not count as a vantage point and approvals it refused, by reason.",
	}, []string{"reason"})
	for _, r := range refusedReasons {
		c.WithLabelValues(r) // at zero: the first refusal shows in rate()
	}
	return c
}

// Refused is how many samples or approvals were refused for reason.
func (a *Actuator) Refused(reason string) float64 {
	var m dto.Metric
	if err := a.refused.WithLabelValues(reason).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// ObserveMsg counts a sample batch as a vantage point only when its
// payload speaks for the host its subject names: one host cannot pose as
// several vantage points to satisfy min_vantage.
func (a *Actuator) ObserveMsg(subject string, data []byte) bool {
	prefix, cluster, host, err := wire.ParseHostSubject(subject)
	if err != nil || prefix != wire.SamplesPrefix {
		a.refused.WithLabelValues(RefusedBadSample).Inc()
		return false
	}
	b, err := wire.DecodeBatch(data)
	if err != nil {
		a.refused.WithLabelValues(RefusedBadSample).Inc()
		return false
	}
	if b.Cluster != cluster || b.Host != host {
		a.refused.WithLabelValues(RefusedSpoofedSample).Inc()
		a.log.Warn("sample batch speaks for another host; not a vantage point", "subject", subject,
			"payload_cluster", b.Cluster, "payload_host", b.Host)
		return false
	}
	a.Observe(b)
	return true
}

// newNonce is the single-use secret of one approval request, carried by
// the Approve button.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkApproval says why ack does not approve the request with nonce made
// at requested, or "" when it does.
func (a *Actuator) checkApproval(ack *wire.Ack, nonce string, requested time.Time) (reason, why string) {
	if ack.Nonce == "" || subtle.ConstantTimeCompare([]byte(ack.Nonce), []byte(nonce)) != 1 {
		return RefusedNonce, "the approval does not carry this request's nonce (hand-published, or replayed from an earlier request)"
	}
	if !slices.Contains(a.cfg.Approvers, ack.By) {
		return RefusedApprover, fmt.Sprintf("%q is not an approver (failover.approvers)", ack.By)
	}
	now := a.clock.Now()
	if ack.At.Before(requested.Add(-clockSkew)) || ack.At.After(now.Add(clockSkew)) || now.Sub(ack.At) > a.cfg.ApprovalTimeout.D() {
		return RefusedAge, fmt.Sprintf("the approval's time %s is outside the request's window", ack.At.Format(time.RFC3339))
	}
	return "", ""
}

// awaitApproval publishes a pending_approval record carrying a fresh nonce
// and waits for an approve Ack, read through JetStream (so that a
// publication the stream dropped as a duplicate is never seen), that
// carries the nonce, comes from a listed approver and is recent. Every
// other approval is refused, counted and audited. With auth on, the
// approval must also be signed by the notifier (or an operator in its own
// name, where allowed: auth.AckChecker). It returns who approved and who
// signed the approval ("-" with auth off), or why not.
func (a *Actuator) awaitApproval(ctx context.Context, al *wire.Alert, what string) (ok bool, detail, signer string) {
	cluster := al.Labels["cluster"]
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := a.js.OrderedConsumer(cctx, bus.AcksStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.AckSubject(cluster)}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return false, fmt.Sprintf("cannot listen for approvals: %v", err), ""
	}
	ch := make(chan jetstream.Msg, 64)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case ch <- m:
		case <-cctx.Done():
		}
	})
	if err != nil {
		return false, fmt.Sprintf("cannot listen for approvals: %v", err), ""
	}
	defer cc.Stop()
	timeout := a.cfg.ApprovalTimeout.D()
	nonce := newNonce()
	requested := a.clock.Now()
	pending := wire.Action{
		Cluster: cluster, Fingerprint: al.Fingerprint, Rule: al.Rule, Kind: string(failover.ActionSwitchover),
		Decision: DecisionPendingApproval, From: al.Labels["host"], Nonce: nonce,
		Reason: fmt.Sprintf("waiting up to %s for approval to switch over %s", timeout, what),
	}
	// The wait starts before the pending record is out: whoever reacts to
	// the record (a person, or a test advancing its clock) finds it running.
	deadline := a.clock.After(timeout)
	a.publish(ctx, &pending)
	for {
		select {
		case <-ctx.Done():
			return false, "the actuator stopped while waiting for approval", ""
		case <-deadline:
			return false, fmt.Sprintf("nobody approved within %s", timeout), ""
		case m := <-ch:
			ack, err := wire.DecodeAck(m.Data())
			if err != nil || ack.Fingerprint != al.Fingerprint || ack.Action != wire.AckApprove {
				continue
			}
			// Who signed it first: a forged approval is refused as
			// forged, whatever nonce it copied.
			id, err := a.acks.Check(m.Subject(), m.Data(), m.Headers(), ack)
			if err != nil {
				var r *auth.AckRefusal
				reason := RefusedUnsigned
				if errors.As(err, &r) {
					reason = ackRefusal[r.Reason]
				}
				a.refuseApproval(ctx, al, ack, id, reason, err.Error())
				continue
			}
			if reason, why := a.checkApproval(ack, nonce, requested); reason != "" {
				a.refuseApproval(ctx, al, ack, id, reason, why)
				continue
			}
			return true, orDash(ack.By) + " via " + orDash(ack.Via), auth.SignedBy(id)
		}
	}
}

// refuseApproval counts and audits a refused approval.
func (a *Actuator) refuseApproval(ctx context.Context, al *wire.Alert, ack *wire.Ack, signer auth.Identity, reason, why string) {
	a.refused.WithLabelValues(reason).Inc()
	a.log.Warn("approval refused", "cluster", al.Labels["cluster"], "fingerprint", al.Fingerprint,
		"by", ack.By, "via", ack.Via, "signer", auth.SignedBy(signer), "reason", reason, "why", why)
	a.publish(ctx, &wire.Action{
		ID: "approval-refused-" + ack.ID, Cluster: al.Labels["cluster"], Fingerprint: al.Fingerprint, Rule: al.Rule,
		Kind: string(failover.ActionSwitchover), Decision: DecisionApprovalRefused, Safeguard: string(GuardApproval),
		Reason: why, Evidence: map[string]string{"by": ack.By, "via": ack.Via, "ack_id": ack.ID, "reason": reason,
			"signer": auth.SignedBy(signer)},
	})
}
