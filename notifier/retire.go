package notifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// retireState is what the retirer saw of the old consumer at its last
// look: its position and whether anybody was pulling from it.
type retireState struct {
	seen      bool
	delivered uint64
}

// retireOld deletes the dispatcher's former single consumer (Durable, as
// notifiers before per-integration lanes used it) once the lanes have
// taken over its position: every lane's consumer exists and has
// acknowledged at least as far as the old one, and the old one is idle
// (no pull waiting, nothing unacknowledged, and no delivery since the
// last look, so no notifier of an earlier version still uses it). It
// reports whether the old consumer is gone (deleted now, or absent).
func (d *Dispatcher) retireOld(ctx context.Context, js jetstream.JetStream, last *retireState) (bool, error) {
	old, err := js.Consumer(ctx, bus.AlertsStream, d.cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("consumer %s: %w", d.cfg.Durable, err)
	}
	info, err := old.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("consumer %s: %w", d.cfg.Durable, err)
	}
	prev := *last
	*last = retireState{seen: true, delivered: info.Delivered.Stream}
	if info.NumWaiting > 0 || info.NumAckPending > 0 || !prev.seen || prev.delivered != info.Delivered.Stream {
		return false, nil // in use, or not watched long enough
	}
	for _, lane := range d.Lanes() {
		c, err := js.Consumer(ctx, bus.AlertsStream, lane)
		if err != nil {
			return false, nil // not created yet
		}
		li, err := c.Info(ctx)
		if err != nil || li.AckFloor.Stream < info.AckFloor.Stream {
			return false, nil // behind the old consumer still
		}
	}
	if err := js.DeleteConsumer(ctx, bus.AlertsStream, d.cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, fmt.Errorf("deleting consumer %s: %w", d.cfg.Durable, err)
	}
	d.logger.Info("retired the former shared notifier consumer: the per-integration consumers have taken over its position",
		"durable", d.cfg.Durable, "ack_floor", info.AckFloor.Stream, "lanes", d.Lanes())
	return true, nil
}

// retire runs retireOld every RetireInterval until the old consumer is
// gone or ctx ends.
func (d *Dispatcher) retire(ctx context.Context, js jetstream.JetStream) {
	if len(d.integrations) == 0 {
		return // the only consumer is Durable itself
	}
	var last retireState
	t := time.NewTicker(d.cfg.RetireInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gone, err := d.retireOld(ctx, js, &last)
		if err != nil && ctx.Err() == nil {
			d.logger.Warn("cannot retire the former shared notifier consumer yet", "durable", d.cfg.Durable, "err", err)
		}
		if gone {
			return
		}
	}
}
