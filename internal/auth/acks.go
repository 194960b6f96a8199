package auth

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons an acknowledgement is not trusted (bounded label values of the
// refusal counters of the parts that read acks).
const (
	// AckUnsigned: no signature, a bad one, or a signer outside the
	// trust root (a hand-published ack).
	AckUnsigned = "unsigned"
	// AckRole: signed by a role that may not make this ack (only the
	// notifier's Slack and phone endpoints, and the operator where
	// allowed, make acks).
	AckRole = "role"
	// AckImpersonation: an operator's ack in someone else's name, or
	// claiming to come from Slack or the phone.
	AckImpersonation = "impersonation"
	// AckCluster: the ack's cluster is not its subject's, or not the
	// cluster the operator's credential was issued for.
	AckCluster = "cluster"
)

// AckReasons lists the refusal reasons, for presetting counters.
var AckReasons = []string{AckUnsigned, AckRole, AckImpersonation, AckCluster}

// AckRefusal is why an acknowledgement was not trusted.
type AckRefusal struct {
	Reason string // one of AckReasons
	Detail string // one sentence, no secret
}

func (r *AckRefusal) Error() string { return "ack refused (" + r.Reason + "): " + r.Detail }

// AckChecker decides whether an acknowledgement (a wire.Ack on
// wire.AckSubject) may act: who made it is the signer of the message, not
// what its payload says.
//
// With a Verifier (auth on), an ack counts only when signed by
//   - the notifier role: its Slack interaction endpoint and phone
//     callbacks, which verified the person (Slack's request signature,
//     the provider's callback signature) and name them in By/Via; or
//   - the operator role (the `mciv ack` CLI), when AllowOperator, and
//     only in the credential's own name (By is the credential's name,
//     Via "cli") for the cluster the credential was issued for.
//
// Without a Verifier (auth off: the embedded loopback default, no trust
// root) every well-formed ack on its own cluster's subject counts, as
// before: whoever can reach the bus can acknowledge, and By/Via are only
// what the publisher wrote. Only the loopback listener protects the bus.
type AckChecker struct {
	verifier      *Verifier
	allowOperator bool
	unverifiable  string // why acks cannot be verified on a secured bus: refuse them all
}

// NewAckChecker returns a checker; v nil means auth is off (see AckChecker).
func NewAckChecker(v *Verifier, allowOperator bool) *AckChecker {
	return &AckChecker{verifier: v, allowOperator: allowOperator}
}

// NewUnverifiableAckChecker refuses every ack as unsigned, saying why:
// for a part on a bus that requires credentials but that has no trust
// root to verify signatures with (fail closed).
func NewUnverifiableAckChecker(why string) *AckChecker {
	return &AckChecker{unverifiable: why}
}

// Secured reports whether acks are verified (or all refused).
func (c *AckChecker) Secured() bool { return c != nil && (c.verifier != nil || c.unverifiable != "") }

// Check says who made ack, decoded from data published on subject with
// header h, or an *AckRefusal. With auth off the identity is empty.
func (c *AckChecker) Check(subject string, data []byte, h nats.Header, ack *wire.Ack) (Identity, error) {
	if subject != wire.AckSubject(ack.Cluster) {
		return Identity{}, &AckRefusal{AckCluster, fmt.Sprintf("an ack for cluster %q published on %s", ack.Cluster, subject)}
	}
	if !c.Secured() {
		return Identity{}, nil
	}
	if c.verifier == nil {
		return Identity{}, &AckRefusal{AckUnsigned, c.unverifiable}
	}
	id, err := c.verifier.Verify(subject, data, h)
	if err != nil {
		return Identity{}, &AckRefusal{AckUnsigned, err.Error()}
	}
	switch id.Role {
	case Notifier:
		if ack.Via != wire.ViaSlack && ack.Via != wire.ViaPhone {
			return id, &AckRefusal{AckImpersonation, fmt.Sprintf("the notifier %q speaks for people in Slack or on the phone, not via %q", id.Name, ack.Via)}
		}
		return id, nil
	case Operator:
		if !c.allowOperator {
			return id, &AckRefusal{AckRole, fmt.Sprintf("operator %q may not make this ack here", id.Name)}
		}
		if ack.By != id.Name || ack.Via != wire.ViaCLI {
			return id, &AckRefusal{AckImpersonation, fmt.Sprintf("operator %q signed an ack by %q via %q; an operator acks in its own name via cli", id.Name, ack.By, ack.Via)}
		}
		if !strings.EqualFold(id.Cluster, ack.Cluster) {
			return id, &AckRefusal{AckCluster, fmt.Sprintf("operator %q of cluster %q acked for cluster %q", id.Name, id.Cluster, ack.Cluster)}
		}
		return id, nil
	}
	return id, &AckRefusal{AckRole, fmt.Sprintf("%s %q may not make acks", id.Role, id.Name)}
}

// SignedBy is a short description of id for audit records: "notifier/mon-1",
// or "-" when acks are not verified.
func SignedBy(id Identity) string {
	if id.Role == "" {
		return "-"
	}
	return string(id.Role) + "/" + id.Name
}

// NewAckRefusedCounter returns a counter of refused acks by reason (one of
// AckReasons), each at zero so that the first refusal shows in rate().
func NewAckRefusedCounter(name, help string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"reason"})
	for _, r := range AckReasons {
		c.WithLabelValues(r)
	}
	return c
}

// RefusalReason is the reason of an error Check returned (AckUnsigned
// for an error that is no *AckRefusal).
func RefusalReason(err error) string {
	var r *AckRefusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return AckUnsigned
}
