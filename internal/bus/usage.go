package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// NearFull is the share of a stream's MaxBytes above which WatchUsage
// warns.
const NearFull = 0.8

// UsageWatcher exports how full each JetStream stream (KV buckets are
// streams named KV_<bucket>) is against its MaxBytes, as
// mciv_jetstream_stream_usage_ratio{stream}, and logs a warning when a
// stream goes above NearFull (once, until it falls below again).
type UsageWatcher struct {
	js     jetstream.JetStream
	log    *slog.Logger
	ratio  *prometheus.GaugeVec
	warned map[string]bool
	only   []string
}

// NewUsageWatcher registers the gauge with reg (nil: not registered).
func NewUsageWatcher(js jetstream.JetStream, reg prometheus.Registerer, logger *slog.Logger) (*UsageWatcher, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &UsageWatcher{js: js, log: logger, warned: map[string]bool{}, ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mciv_jetstream_stream_usage_ratio",
		Help: "Bytes stored in a JetStream stream (KV buckets: KV_<bucket>) over its MaxBytes; near 1 the stream discards its oldest messages (KV buckets refuse writes).",
	}, []string{"stream"})}
	if reg != nil {
		if err := reg.Register(w.ratio); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Only limits the watcher to the named streams (a KV bucket B is stream
// KV_B), looked up one by one: a client whose NATS role may not list every
// stream (the analyzer with nats.auth on) reads those its role may see,
// instead of being refused at every check.
func (w *UsageWatcher) Only(streams ...string) *UsageWatcher {
	w.only = streams
	return w
}

// Check reads every stream once (those given to Only, when any) and
// returns the names of those above NearFull.
func (w *UsageWatcher) Check(ctx context.Context) ([]string, error) {
	if len(w.only) > 0 {
		var full []string
		var errs []error
		for _, name := range w.only {
			s, err := w.js.Stream(ctx, name)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("stream %s: %w", name, err))
				continue
			}
			if w.observe(s.CachedInfo()) {
				full = append(full, name)
			}
		}
		return full, errors.Join(errs...)
	}
	var full []string
	lister := w.js.ListStreams(ctx)
	for info := range lister.Info() {
		if w.observe(info) {
			full = append(full, info.Config.Name)
		}
	}
	return full, lister.Err()
}

// observe sets the gauge of one stream, warns once when it goes above
// NearFull, and reports whether it is there.
func (w *UsageWatcher) observe(info *jetstream.StreamInfo) bool {
	name, max := info.Config.Name, info.Config.MaxBytes
	if max <= 0 {
		return false
	}
	r := float64(info.State.Bytes) / float64(max)
	w.ratio.WithLabelValues(name).Set(r)
	if r < NearFull {
		w.warned[name] = false
		return false
	}
	if !w.warned[name] {
		w.warned[name] = true
		w.log.Warn("jetstream stream near full", "stream", name, "bytes", info.State.Bytes, "max_bytes", max,
			"ratio", r, "discard", info.Config.Discard.String())
	}
	return true
}

// Run checks every interval until ctx ends.
func (w *UsageWatcher) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.log.Debug("reading stream usage failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
