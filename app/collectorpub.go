package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/internal/bus"
)

// collectorPublisher is how the collector sends: on an external bus
// whose input stream (bus.InputStream, made by fleet analyzers) exists,
// a collector.StreamPublisher that keeps batches through an outage;
// otherwise (the embedded default, or a bus without the stream) core
// NATS publish.
func collectorPublisher(ctx context.Context, cfg config.Config, nc *nats.Conn, reg prometheus.Registerer,
	logger *slog.Logger, start func(string, func(context.Context) error)) (collector.Publisher, error) {
	if cfg.NATS.URL == "" {
		return nc, nil
	}
	js, err := bus.JetStream(nc)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.Stream(sctx, bus.InputStream); err != nil {
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			logger.Warn("cannot look up the input stream: publishing on core NATS", "stream", bus.InputStream, "err", err)
		}
		return nc, nil
	}
	sp, err := collector.NewStreamPublisher(js, collector.StreamPublisherConfig{}, reg, logger)
	if err != nil {
		return nil, err
	}
	start("collector-publish", sp.Run)
	logger.Info("publishing to the input stream, retrying through outages", "stream", bus.InputStream)
	return sp, nil
}
