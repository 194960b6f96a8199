package escalation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
		e.HandleAck(ctx, ack)
		if err := msg.Ack(); err != nil {
			e.log.Debug("acknowledging an Ack message failed", "err", err)
		}
	}
	return nil
}

func isTimeout(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoMessages)
}

// JetStreamAcks publishes acknowledgements to JetStream on
// wire.AckSubject(cluster), deduplicated by the Ack's ID.
type JetStreamAcks struct {
	JS jetstream.JetStream
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
	if _, err := p.JS.Publish(ctx, wire.AckSubject(ack.Cluster), data, jetstream.WithMsgID(ack.ID)); err != nil {
		return fmt.Errorf("escalation: publishing ack: %w", err)
	}
	return nil
}
