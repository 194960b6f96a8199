package chart

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
)

// Recorder keeps the recent values of every (cluster, host, signal) it
// sees in sample batches: counters as a rate per second, gauges as they
// are, histograms as the mean observation; series of one signal with
// different labels are added up, so a host's distinct label values cost
// nothing here, but its distinct signal names do: at most MaxSignalsPerHost
// per host and maxSeries in all are kept, the rest refused and counted
// (Refused), and a series without a point in the window is forgotten. It
// is safe for concurrent use.
type Recorder struct {
	window    time.Duration
	maxSeries int

	mu      sync.Mutex
	series  map[key]*ring
	perHost map[[2]string]int // series per cluster and host
	refused uint64
	swept   time.Time // batch time of the last sweep of stale series
}

// MaxSignalsPerHost caps the series one host can make a Recorder keep.
// The collector sends a dozen signals.
const MaxSignalsPerHost = 64

type key struct{ cluster, host, signal string }

type ring struct {
	pts []Point // oldest first; trimmed to the window
}

// NewRecorder keeps window of history (default 15m) for at most maxSeries
// series (default 10000; more are ignored).
func NewRecorder(window time.Duration, maxSeries int) *Recorder {
	if window <= 0 {
		window = 15 * time.Minute
	}
	if maxSeries <= 0 {
		maxSeries = 10000
	}
	return &Recorder{window: window, maxSeries: maxSeries, series: make(map[key]*ring), perHost: make(map[[2]string]int)}
}

// Refused is how many new series were not recorded because of a cap.
func (r *Recorder) Refused() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// sweep forgets the series whose last point is older than the window
// before t, at most once per window. The caller holds mu.
func (r *Recorder) sweep(t time.Time) {
	if t.Sub(r.swept) < r.window {
		return
	}
	r.swept = t
	for k, rg := range r.series {
		if n := len(rg.pts); n == 0 || t.Sub(rg.pts[n-1].T) > r.window {
			delete(r.series, k)
			hk := [2]string{k.cluster, k.host}
			if r.perHost[hk]--; r.perHost[hk] <= 0 {
				delete(r.perHost, hk)
			}
		}
	}
}

// Add records one batch.
func (r *Recorder) Add(b *wire.Batch) {
	t := b.Start.Add(b.Interval)
	secs := b.Interval.Seconds()
	sums := make(map[string]float64)
	for i := range b.Series {
		s := &b.Series[i]
		var v float64
		switch s.Kind {
		case wire.KindCounter:
			if secs <= 0 {
				continue
			}
			v = s.Value / secs
		case wire.KindGauge:
			v = s.Value
		case wire.KindHistogram:
			if s.Hist == nil || s.Hist.Count == 0 {
				continue
			}
			v = s.Hist.Sum / float64(s.Hist.Count)
		default:
			continue
		}
		sums[s.Signal] += v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep(t)
	hk := [2]string{b.Cluster, b.Host}
	for sig, v := range sums {
		k := key{b.Cluster, b.Host, sig}
		rg := r.series[k]
		if rg == nil {
			if len(r.series) >= r.maxSeries || r.perHost[hk] >= MaxSignalsPerHost {
				r.refused++
				continue
			}
			rg = &ring{}
			r.series[k] = rg
			r.perHost[hk]++
		}
		rg.pts = append(rg.pts, Point{T: t, V: v})
		cut := 0
		for cut < len(rg.pts) && t.Sub(rg.pts[cut].T) > r.window {
			cut++
		}
		if cut > 0 {
			rg.pts = append(rg.pts[:0], rg.pts[cut:]...)
		}
	}
}

// Points returns a copy of the recent values of one series.
func (r *Recorder) Points(cluster, host, signal string) []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	rg := r.series[key{cluster, host, signal}]
	if rg == nil {
		return nil
	}
	return append([]Point(nil), rg.pts...)
}

// Subscribe starts recording every host's sample batches; the subscription
// is active when it returns. Call the returned function to stop.
func (r *Recorder) Subscribe(nc *nats.Conn, logger *slog.Logger) (stop func(), err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sub, err := nc.Subscribe(wire.SamplesWildcard, func(m *nats.Msg) {
		b, err := wire.DecodeBatch(m.Data)
		if err != nil {
			logger.Debug("chart recorder: undecodable batch", "subject", m.Subject, "err", err)
			return
		}
		if _, cluster, host, err := wire.ParseHostSubject(m.Subject); err != nil || cluster != b.Cluster || host != b.Host {
			logger.Debug("chart recorder: batch names another host than its subject; ignored", "subject", m.Subject, "cluster", b.Cluster, "host", b.Host)
			return
		}
		r.Add(b)
	})
	if err != nil {
		return nil, fmt.Errorf("chart recorder: subscribe: %w", err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("chart recorder: subscribe: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// Run records every host's sample batches until ctx ends.
func (r *Recorder) Run(ctx context.Context, nc *nats.Conn, logger *slog.Logger) error {
	stop, err := r.Subscribe(nc, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	return nil
}
