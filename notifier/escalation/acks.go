package escalation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

// DefaultAckDurable is the durable consumer of MCIV_ACKS that feeds
// ConsumeAcks.
const DefaultAckDurable = "mciv-escalation"

// ConsumeAcks feeds every acknowledgement on the stream MCIV_ACKS (Slack
// buttons, phone keys, the CLI) to the engine until ctx ends. The durable
// consumer keeps its position across restarts, so an Ack published while
// the notifier was down still stops the escalation when it is back.
// Failures to reach JetStream are logged and retried; it returns nil when
// ctx ends.
func (e *Engine) ConsumeAcks(ctx context.Context, js jetstream.JetStream, durable string) error {
	if durable == "" {
		durable = DefaultAckDurable
	}
	wait := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := e.consumeAcks(ctx, js, durable)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) {
			return fmt.Errorf("escalation: acks: %w", err)
		}
		e.log.Warn("acks consumer failed; retrying", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
	return nil
}

func (e *Engine) consumeAcks(ctx context.Context, js jetstream.JetStream, durable string) error {
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.AcksStream, jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "mciv phone escalation: stops on acknowledgements",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		FilterSubject: wire.AcksWildcard,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", durable, bus.AcksStream, err)
	}
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if ctx.Err() != nil {
			if msg != nil {
				_ = msg.Nak()
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrNoHeartbeat) || isTimeout(err) {
				continue
			}
			return fmt.Errorf("consumer %s: %w", durable, err)
		}
		ack, err := wire.DecodeAck(msg.Data())
		if err != nil {
			e.log.Warn("dropping an undecodable acknowledgement", "subject", msg.Subject(), "err", err)
			_ = msg.Term()
			continue
		}
		// Approvals are the actuator's to check (and it audits them).
		if ack.Action != wire.AckApprove {
			if id, err := e.opts.AckChecker.Check(msg.Subject(), msg.Data(), msg.Headers(), ack); err != nil {
				e.refuseAck(ctx, js, msg.Subject(), ack, id, err)
				_ = msg.Term()
				continue
			}
		}
		e.HandleAck(ctx, ack)
		if err := msg.Ack(); err != nil {
			e.log.Debug("acknowledging an Ack message failed", "err", err)
		}
	}
	return nil
}

// NewAcksRefusedCounter is mciv_notifier_acks_refused_total{reason}: the
// acknowledgements the notifier did not act on (auth.AckReasons).
func NewAcksRefusedCounter() *prometheus.CounterVec {
	return auth.NewAckRefusedCounter("mciv_notifier_acks_refused_total",
		"Acknowledgements the notifier refused to act on (unsigned, wrong role, impersonation, wrong cluster), by reason.")
}

// AcksRefused is how many acknowledgements were refused for reason.
func (e *Engine) AcksRefused(reason string) float64 {
	var m dto.Metric
	if err := e.opts.AcksRefused.WithLabelValues(reason).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// refuseAck counts, logs and audits (on wire.AckActionSubject) an
// acknowledgement that may not stop an escalation.
func (e *Engine) refuseAck(ctx context.Context, js jetstream.JetStream, subject string, ack *wire.Ack, signer auth.Identity, err error) {
	reason := auth.RefusalReason(err)
	e.opts.AcksRefused.WithLabelValues(reason).Inc()
	e.log.Warn("acknowledgement refused; the escalation continues", "subject", subject, "fingerprint", ack.Fingerprint,
		"action", ack.Action, "by", ack.By, "via", ack.Via, "signer", auth.SignedBy(signer), "reason", reason, "err", err)
	cluster := strings.TrimPrefix(subject, wire.AcksPrefix+".")
	if wire.ValidToken(cluster) != nil {
		return
	}
	act := &wire.Action{
		ID: "ack-refused-" + ack.ID, Cluster: cluster, Fingerprint: ack.Fingerprint, Kind: wire.ActionKindAck,
		Decision: "refused", Reason: err.Error(), At: e.opts.Now(),
		Evidence: map[string]string{"action": string(ack.Action), "by": ack.By, "via": ack.Via, "ack_id": ack.ID,
			"reason": reason, "signer": auth.SignedBy(signer), "part": "notifier"},
	}
	data, err := wire.EncodeAction(act)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.Publish(pctx, wire.AckActionSubject(cluster), data, jetstream.WithMsgID(act.ID)); err != nil {
		e.log.Error("audit record of a refused acknowledgement not published", "ack_id", ack.ID, "err", err)
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoMessages)
}

// JetStreamAcks publishes acknowledgements to JetStream on
// wire.AckSubject(cluster), deduplicated by the Ack's ID, signed by the
// notifier's credential when it has one (auth on).
type JetStreamAcks struct {
	JS     jetstream.JetStream
	Signer *auth.Signer // nil: unsigned (auth off)
}

// PublishAck publishes ack and waits for JetStream to store it.
func (p JetStreamAcks) PublishAck(ctx context.Context, ack *wire.Ack) error {
	if err := wire.ValidToken(ack.Cluster); err != nil {
		return fmt.Errorf("escalation: ack cluster: %w", err)
	}
	data, err := wire.EncodeAck(ack)
	if err != nil {
		return fmt.Errorf("escalation: encoding ack: %w", err)
	}
	m := &nats.Msg{Subject: wire.AckSubject(ack.Cluster), Data: data}
	if err := p.Signer.Sign(m); err != nil {
		return fmt.Errorf("escalation: signing ack: %w", err)
	}
	if _, err := p.JS.PublishMsg(ctx, m, jetstream.WithMsgID(ack.ID)); err != nil {
		return fmt.Errorf("escalation: publishing ack: %w", err)
	}
	return nil
}
