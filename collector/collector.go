// Package collector runs mciv's eBPF probes on one host: it attaches what
// the kernel allows (BTF tracepoints first, classic tracepoints as a
// fallback for the same signal), reads the in-kernel counters once per
// interval and publishes them as one wire.Batch, and forwards notable
// events from the ring buffer, a bounded number per interval.
//
// A missing hook never stops the collector: it reports the hook (log line,
// mciv_collector_hook_up, Hooks, Doctor) and publishes what it has. With
// nothing attached it still publishes batches holding mciv_collector_up, so
// the host stays visible.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/wire"
)

// Defaults for Config.
const (
	DefaultInterval             = time.Second
	DefaultMaxEventsPerInterval = 100
)

// Config configures a Collector.
type Config struct {
	// Cluster and Host name this host in subjects and messages; both must
	// be valid NATS subject tokens.
	Cluster, Host string
	// Interval between two sample batches; 0 means DefaultInterval.
	Interval time.Duration
	// MaxEventsPerInterval bounds the events published per interval; the
	// rest are counted as suppressed. 0 means DefaultMaxEventsPerInterval.
	MaxEventsPerInterval int
}

// Publisher sends one message. A *nats.Conn is one. It must be safe for
// concurrent use: batches and events are published from two goroutines.
type Publisher interface {
	Publish(subject string, data []byte) error
}

// Collector is the eBPF collector of one host. Create it with New and
// start it with Run.
type Collector struct {
	cfg    Config
	pub    Publisher
	logger *slog.Logger
	m      *metrics
	budget eventBudget

	// loadSpec and hooks describe the eBPF object; tests replace them.
	loadSpec func() (*ebpf.CollectionSpec, error)
	hooks    func() []hookSpec

	samplesSubject, eventsSubject string

	running atomic.Bool
	started chan struct{}

	mu       sync.Mutex
	statuses []HookStatus
}

// New checks cfg and registers the collector's metrics on reg (nil: not
// registered). A nil logger discards.
func New(cfg Config, pub Publisher, reg prometheus.Registerer, logger *slog.Logger) (*Collector, error) {
	if err := wire.ValidToken(cfg.Cluster); err != nil {
		return nil, fmt.Errorf("collector: cluster: %w", err)
	}
	if err := wire.ValidToken(cfg.Host); err != nil {
		return nil, fmt.Errorf("collector: host: %w", err)
	}
	if pub == nil {
		return nil, errors.New("collector: no publisher")
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("collector: negative interval %s", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxEventsPerInterval < 0 {
		return nil, fmt.Errorf("collector: negative max events per interval %d", cfg.MaxEventsPerInterval)
	}
	if cfg.MaxEventsPerInterval == 0 {
		cfg.MaxEventsPerInterval = DefaultMaxEventsPerInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	return &Collector{
		cfg:            cfg,
		pub:            pub,
		logger:         logger,
		m:              m,
		budget:         eventBudget{max: cfg.MaxEventsPerInterval},
		loadSpec:       bpf.LoadTCP,
		hooks:          tcpHooks,
		samplesSubject: wire.SamplesSubject(cfg.Cluster, cfg.Host),
		eventsSubject:  wire.EventsSubject(cfg.Cluster, cfg.Host),
		started:        make(chan struct{}),
	}, nil
}

// Hooks reports, per kernel hook, each way of attaching that Run tried:
// the ones that failed and why, then the one attached, if any. It is empty
// until Run has attached (see Started).
func (c *Collector) Hooks() []HookStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]HookStatus(nil), c.statuses...)
}

// Started is closed once Run has attached its hooks, when Hooks is final.
func (c *Collector) Started() <-chan struct{} { return c.started }

// Run attaches the probes and publishes a batch every interval until ctx
// ends, then detaches everything and returns nil. It fails only if called
// twice; a probe the kernel refuses is reported, not fatal.
func (c *Collector) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("collector: Run called twice")
	}
	p := c.attach()
	if p != nil {
		defer p.close()
	}
	close(c.started)

	var wg sync.WaitGroup
	if p != nil && c.anyAttached() {
		rd, err := ringbuf.NewReader(p.maps[bpf.TCPMapEvents])
		if err != nil {
			c.logger.Error("cannot read the events ring buffer: no events will be published", "err", err)
		} else {
			defer func() {
				rd.Close() // ends readEvents
				wg.Wait()
			}()
			wg.Go(func() { c.readEvents(rd) })
		}
	}
	c.loop(ctx, p)
	return nil
}

// attach loads the object and attaches each hook the first way the kernel
// accepts. It returns nil if not even the maps could be created.
func (c *Collector) attach() *probes {
	if err := rlimit.RemoveMemlock(); err != nil {
		c.logger.Warn("cannot remove the memlock rlimit; kernels before 5.11 may refuse to load", "err", err)
	}
	hooks := c.hooks()
	spec, err := c.loadSpec()
	var p *probes
	if err == nil {
		p, err = openProbes(spec)
	}
	var rows []HookStatus
	for _, h := range hooks {
		var tried []HookStatus
		switch {
		case len(h.ways) == 0:
			tried = []HookStatus{{Name: h.name, Error: "no program for this hook in this build"}}
		case err != nil:
			tried = []HookStatus{{Name: h.name, Type: h.ways[0].typ, Error: explain("eBPF object", err)}}
		default:
			tried = p.attachFirst(h)
		}
		up := 0.0
		for _, r := range tried {
			if r.Attached {
				up = 1
				c.logger.Info("eBPF hook attached", "hook", r.Name, "type", r.Type)
			} else {
				c.logger.Warn("eBPF hook not attached this way", "hook", r.Name, "type", r.Type, "err", r.Error)
			}
		}
		if up == 0 {
			c.logger.Error("eBPF hook not attached: its signals are missing on this host; see `mciv doctor`", "hook", h.name)
		}
		c.m.hookUp.WithLabelValues(h.name).Set(up)
		rows = append(rows, tried...)
	}
	c.mu.Lock()
	c.statuses = rows
	c.mu.Unlock()
	if !c.anyAttached() {
		c.logger.Error("NO eBPF hook could be attached: this host publishes only mciv_collector_up; run `mciv doctor` to see why")
	}
	return p
}

func (c *Collector) anyAttached() bool {
	for _, h := range c.Hooks() {
		if h.Attached {
			return true
		}
	}
	return false
}

// loop publishes one batch per interval until ctx ends.
func (c *Collector) loop(ctx context.Context, p *probes) {
	var (
		tracker     deltaTracker[bpf.TCPRetransKey]
		lastDropped uint64
		seq         uint64
	)
	start := time.Now()
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		end := time.Now()
		series := []wire.Series{upSeries()}
		if p != nil {
			cur, err := readRetransmits(p.maps[bpf.TCPMapTcpRetransmits])
			if err != nil {
				// The tracker keeps the last good reading: the next
				// interval reports the increase of both.
				c.m.mapReadErrors.Inc()
				c.logger.Warn("cannot read retransmit counters this interval", "err", err)
			} else {
				series = append(series, retransmitSeries(tracker.update(cur))...)
			}
			if n, err := readDropped(p.maps[bpf.TCPMapEventsDropped]); err != nil {
				c.m.mapReadErrors.Inc()
				c.logger.Warn("cannot read the ring buffer drop counter", "err", err)
			} else if n > lastDropped {
				c.m.ringbufDropped.Add(float64(n - lastDropped))
				c.logger.Warn("the kernel dropped events: the ring buffer was full", "dropped", n-lastDropped)
				lastDropped = n
			}
		}
		if n := c.budget.reset(); n > 0 {
			c.logger.Debug("events suppressed over the per-interval limit", "suppressed", n, "limit", c.cfg.MaxEventsPerInterval)
		}
		seq++
		c.publishBatch(&wire.Batch{
			Cluster:  c.cfg.Cluster,
			Host:     c.cfg.Host,
			Seq:      seq,
			Start:    start,
			Interval: end.Sub(start),
			Series:   series,
		})
		start = end
	}
}

func (c *Collector) publishBatch(b *wire.Batch) {
	if err := c.pub.Publish(c.samplesSubject, wire.EncodeBatch(b)); err != nil {
		c.m.publishErrors.WithLabelValues("samples").Inc()
		c.logger.Warn("cannot publish sample batch", "subject", c.samplesSubject, "seq", b.Seq, "err", err)
		return
	}
	c.m.batches.Inc()
}

// readEvents forwards ring buffer records until the reader is closed.
func (c *Collector) readEvents(rd *ringbuf.Reader) {
	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if !errors.Is(err, ringbuf.ErrClosed) {
				c.logger.Error("reading the events ring buffer failed: no more events will be published", "err", err)
			}
			return
		}
		c.handleRecord(rec.RawSample)
	}
}

// handleRecord publishes one ring buffer record if the interval's budget
// allows.
func (c *Collector) handleRecord(raw []byte) {
	ev, err := decodeSockEvent(raw)
	if err != nil {
		c.m.eventsMalformed.Inc()
		c.logger.Debug("malformed event record", "err", err)
		return
	}
	if !c.budget.take() {
		c.m.eventsSuppressed.Inc()
		return
	}
	at := monoToWall(ev.TsNs, time.Now(), monotonicNow())
	data, err := wire.EncodeEvent(retransmitEvent(ev, c.cfg.Cluster, c.cfg.Host, at))
	if err != nil {
		c.m.eventsMalformed.Inc()
		return
	}
	if err := c.pub.Publish(c.eventsSubject, data); err != nil {
		c.m.publishErrors.WithLabelValues("events").Inc()
		c.logger.Debug("cannot publish event", "subject", c.eventsSubject, "err", err)
		return
	}
	c.m.eventsPublished.Inc()
}

// monotonicNow reads CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
