package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// IDPublisher is a Publisher that can give a message an id the bus
// deduplicates by (JetStream's Nats-Msg-Id). The collector gives every
// sample batch the id "<cluster>.<host>.<run>.<seq>".
type IDPublisher interface {
	Publisher
	PublishID(subject string, data []byte, id string) error
}

// Defaults of StreamPublisherConfig.
const (
	DefaultStreamBuffer   = 600 // ten minutes of one-second batches
	DefaultPublishTimeout = 2 * time.Second
)

// StreamPublisherConfig configures a StreamPublisher.
type StreamPublisherConfig struct {
	// Buffer bounds the messages waiting to be stored (DefaultStreamBuffer
	// when zero); when it is full the oldest is dropped and counted.
	Buffer int
	// Timeout bounds one publish attempt (DefaultPublishTimeout when zero).
	Timeout time.Duration
	// RetryWait is the pause after a failed attempt (250 ms when zero).
	RetryWait time.Duration
}

// StreamStats counts what a StreamPublisher did.
type StreamStats struct {
	// Published were stored (acknowledged by the stream), Retried are
	// attempts that failed and were tried again, Dropped were pushed out
	// of the full buffer, Buffered wait now.
	Published, Retried, Dropped uint64
	Buffered                    int
}

// StreamPublisher publishes to a JetStream stream (the input stream of a
// fleet, MCIV_IN) so that a NATS outage or a stream leader election loses
// nothing: Publish queues the message in a bounded in-memory buffer and
// returns; one goroutine stores the messages in order, each with its
// message id, and retries a failed attempt until it is acknowledged (the
// id makes a retried message that was in fact stored count once).
type StreamPublisher struct {
	js     jetstream.JetStream
	cfg    StreamPublisherConfig
	logger *slog.Logger

	mu     sync.Mutex
	queue  []*nats.Msg
	wake   chan struct{}
	closed bool

	published, retried, dropped atomic.Uint64
	m                           *streamMetrics
}

type streamMetrics struct {
	published, retried, dropped prometheus.Counter
}

// NewStreamPublisher returns a publisher to the streams of js; Run must
// run for it to send anything. Its metrics are registered on reg (nil:
// not registered); a nil logger discards.
func NewStreamPublisher(js jetstream.JetStream, cfg StreamPublisherConfig, reg prometheus.Registerer, logger *slog.Logger) (*StreamPublisher, error) {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultStreamBuffer
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPublishTimeout
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = 250 * time.Millisecond
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &streamMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "mciv_collector_stream_published_total",
			Help: "Messages stored in the input stream (acknowledged)."}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{Name: "mciv_collector_stream_retried_total",
			Help: "Attempts to store a message that failed and were retried (NATS outage, stream leader election)."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "mciv_collector_stream_dropped_total",
			Help: "Messages dropped because the publish buffer was full: lost samples."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.published, m.retried, m.dropped} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("collector: stream publisher metrics: %w", err)
			}
		}
	}
	return &StreamPublisher{js: js, cfg: cfg, logger: logger, m: m, wake: make(chan struct{}, 1)}, nil
}

// Publish queues data for subject without a message id.
func (p *StreamPublisher) Publish(subject string, data []byte) error {
	return p.PublishID(subject, data, "")
}

// PublishID queues data for subject with message id id (none if empty).
// It never blocks; when the buffer is full the oldest message is dropped.
func (p *StreamPublisher) PublishID(subject string, data []byte, id string) error {
	msg := nats.NewMsg(subject)
	msg.Data = data
	if id != "" {
		msg.Header.Set(jetstream.MsgIDHeader, id)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("collector: stream publisher stopped")
	}
	if len(p.queue) >= p.cfg.Buffer {
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.dropped.Add(1)
		p.m.dropped.Inc()
	}
	p.queue = append(p.queue, msg)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

// Stats returns the publisher's counts.
func (p *StreamPublisher) Stats() StreamStats {
	p.mu.Lock()
	n := len(p.queue)
	p.mu.Unlock()
	return StreamStats{Published: p.published.Load(), Retried: p.retried.Load(), Dropped: p.dropped.Load(), Buffered: n}
}

// Run stores queued messages until ctx ends, then tries for up to
// Timeout to store what is still queued, and returns nil.
func (p *StreamPublisher) Run(ctx context.Context) error {
	defer func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
	}()
	for {
		p.drain(ctx)
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Timeout)
			p.drain(fctx)
			cancel()
			if n := p.Stats().Buffered; n > 0 {
				p.logger.Warn("stopping with messages not stored", "messages", n)
			}
			return nil
		case <-p.wake:
		}
	}
}

// drain stores the queue in order until it is empty or ctx ends.
func (p *StreamPublisher) drain(ctx context.Context) {
	failing := false
	for ctx.Err() == nil {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		msg := p.queue[0]
		p.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		_, err := p.js.PublishMsg(actx, msg)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.retried.Add(1)
			p.m.retried.Inc()
			if !failing {
				p.logger.Warn("cannot store in the input stream; retrying", "subject", msg.Subject, "err", err)
				failing = true
			}
			select {
			case <-ctx.Done():
			case <-time.After(p.cfg.RetryWait):
			}
			continue
		}
		if failing {
			p.logger.Info("input stream stores again")
			failing = false
		}
		p.mu.Lock()
		// The head may have been dropped meanwhile (buffer full): pop
		// only the message just stored.
		if len(p.queue) > 0 && p.queue[0] == msg {
			p.queue[0] = nil
			p.queue = p.queue[1:]
		}
		p.mu.Unlock()
		p.published.Add(1)
		p.m.published.Inc()
	}
}
