// Package collector runs mciv's eBPF probes on one host: it attaches what
// the kernel allows (BTF tracepoints first, classic tracepoints as a
// fallback for the same signal), finds database servers (PostgreSQL USDT
// probes, MySQL/MariaDB dispatch_command) and attaches to their binaries,
// reads the in-kernel counters and histograms once per interval and
// publishes them as one wire.Batch, and forwards notable events (TCP
// retransmits and resets, slow queries with their text normalised) from
// the ring buffer, a bounded number per interval.
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
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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
	// DefaultNotableInterval is how soon after its start a batch is cut
	// short and published when a notable event (a TCP retransmit or
	// reset) arrives.
	DefaultNotableInterval = 250 * time.Millisecond
	// DefaultSlowQueryThreshold is the latency above which a database
	// query becomes a db_slow_query event.
	DefaultSlowQueryThreshold = 100 * time.Millisecond
	// DefaultMaxSeriesPerSignal bounds the series of one signal per batch.
	DefaultMaxSeriesPerSignal = 1000
	// DefaultPostgresDiscoveryInterval is how often the collector looks
	// for PostgreSQL binaries it has not attached to yet.
	DefaultPostgresDiscoveryInterval = 10 * time.Second
)

// Config configures a Collector.
type Config struct {
	// Cluster and Host name this host in subjects and messages; both must
	// be valid NATS subject tokens.
	Cluster, Host string
	// Interval between two sample batches; 0 means DefaultInterval.
	Interval time.Duration
	// NotableInterval: when a notable event (TCP retransmit or reset)
	// arrives, the batch being gathered is published as soon as it is
	// NotableInterval old, rather than at the end of Interval, so that a
	// fault reaches the analyzer within a fraction of a second while a
	// quiet host still sends one batch per Interval. At most one batch
	// per NotableInterval. 0 means DefaultNotableInterval; negative (or
	// not less than Interval) switches early batches off.
	NotableInterval time.Duration
	// MaxEventsPerInterval bounds the events published per interval; the
	// rest are counted as suppressed. 0 means DefaultMaxEventsPerInterval.
	MaxEventsPerInterval int
	// SlowQueryThreshold: database queries slower than this become
	// db_slow_query events. 0 means DefaultSlowQueryThreshold.
	SlowQueryThreshold time.Duration
	// MaxSeriesPerSignal bounds the series of one signal in a batch; the
	// least busy beyond it are merged into one with peer, device or
	// instance "other" (counted in mciv_collector_series_dropped_total).
	// 0 means DefaultMaxSeriesPerSignal.
	MaxSeriesPerSignal int
	// PostgresDiscoveryInterval is how often running PostgreSQL servers
	// are looked for. 0 means DefaultPostgresDiscoveryInterval.
	PostgresDiscoveryInterval time.Duration
	// NetNS, if set, is the path of a network namespace (such as
	// /var/run/netns/NAME or /proc/PID/ns/net): the TCP probes then
	// observe only sockets of that namespace, and that namespace is this
	// collector's host. Empty: every namespace, the host being the
	// collector's own (/proc/self/ns/net).
	//
	// TCP series and events of a namespace other than the host's carry a
	// netns label, the namespace's inode number in decimal.
	NetNS string
	// PostgresProbes is how PostgreSQL query latency is measured:
	// PostgresProbesPacket (the default, ""), PostgresProbesSocket or
	// PostgresProbesUSDT. In packet mode, a server whose packets cannot
	// be watched alone (see Hooks' query_latency rows) gets the socket
	// tracepoints; in both, a kernel without the socket tracepoints gets
	// the USDT probes instead.
	PostgresProbes string
	// QuerySampleQPS: in packet mode, above this many queries per second
	// (the servers measured through their packets together) the packet
	// programs measure the requests begun in a quarter (at a random place) of each
	// interval and the counts are scaled back (see sampling.go). 0 means
	// DefaultQuerySampleQPS; negative: never sample.
	QuerySampleQPS int
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

	// objects are the eBPF objects and their hooks; tests replace them.
	objects []object
	// pgProbes are the PostgreSQL probes attached; benchmarks narrow them.
	pgProbes []pgProbe
	// pgOnly, if set, picks the PostgreSQL servers (by postmaster pid)
	// measured: benchmarks on a shared machine keep to their own.
	pgOnly func(pid int) bool

	samplesSubject, eventsSubject string
	// run tells this run's batch ids from an earlier run's.
	run string

	running atomic.Bool
	started chan struct{}
	// notable carries a signal (buffered, never blocking the reader) when
	// a notable event arrives: the loop cuts its batch short.
	notable chan struct{}

	names names
	// dbScans counts the completed looks for database servers (tests wait
	// for one that began after their server started).
	dbScans atomic.Int64

	// hostNetNS is the inode of the network namespace this collector
	// treats as its host: TCP signals from it carry no netns label. 0 if
	// unknown.
	hostNetNS uint32

	mu       sync.Mutex
	statuses []HookStatus
	// attached holds the loaded objects while Run runs (nil before and
	// after): the overhead benchmark pauses and resumes their hooks.
	attached *probes
	// sampler samples the packet path when busy (nil: never); the
	// overhead benchmark keeps programs it detaches out of its windows.
	sampler *querySampler
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
	if cfg.NotableInterval == 0 {
		cfg.NotableInterval = DefaultNotableInterval
	}
	if cfg.NotableInterval >= cfg.Interval {
		cfg.NotableInterval = -1 // no earlier than a normal batch anyway
	}
	if cfg.MaxEventsPerInterval < 0 {
		return nil, fmt.Errorf("collector: negative max events per interval %d", cfg.MaxEventsPerInterval)
	}
	if cfg.MaxEventsPerInterval == 0 {
		cfg.MaxEventsPerInterval = DefaultMaxEventsPerInterval
	}
	for _, d := range []*time.Duration{&cfg.SlowQueryThreshold, &cfg.PostgresDiscoveryInterval} {
		if *d < 0 {
			return nil, fmt.Errorf("collector: negative duration %s in config", *d)
		}
	}
	if cfg.SlowQueryThreshold == 0 {
		cfg.SlowQueryThreshold = DefaultSlowQueryThreshold
	}
	if cfg.PostgresDiscoveryInterval == 0 {
		cfg.PostgresDiscoveryInterval = DefaultPostgresDiscoveryInterval
	}
	if cfg.MaxSeriesPerSignal < 0 {
		return nil, fmt.Errorf("collector: negative max series per signal %d", cfg.MaxSeriesPerSignal)
	}
	if cfg.QuerySampleQPS == 0 {
		cfg.QuerySampleQPS = DefaultQuerySampleQPS
	}
	if cfg.MaxSeriesPerSignal == 0 {
		cfg.MaxSeriesPerSignal = DefaultMaxSeriesPerSignal
	}
	switch cfg.PostgresProbes {
	case "":
		cfg.PostgresProbes = PostgresProbesPacket
	case PostgresProbesPacket, PostgresProbesSocket, PostgresProbesUSDT:
	default:
		return nil, fmt.Errorf("collector: postgres probes %q: want %q, %q or %q", cfg.PostgresProbes, PostgresProbesPacket, PostgresProbesSocket, PostgresProbesUSDT)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hostNetNS, err := netnsInode(selfNetNS)
	if err != nil {
		logger.Warn("cannot read this process's network namespace: every TCP signal will carry a netns label", "err", err)
	}
	objs := objects()
	if cfg.NetNS != "" {
		hostNetNS, err = netnsInode(cfg.NetNS)
		if err != nil {
			return nil, fmt.Errorf("collector: network namespace: %w", err)
		}
		objs = filterNetNS(objs, hostNetNS)
	}
	if cfg.PostgresProbes != PostgresProbesUSDT {
		// The USDT object comes too, as the fallback on kernels without
		// the socket tracepoints (before Linux 6.3): its programs are
		// loaded only if it is used.
		objs = append(objs, dbSockObject(cfg.SlowQueryThreshold, runtime.GOARCH))
	}
	objs = append(objs, pgObject(cfg.SlowQueryThreshold))
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	return &Collector{
		hostNetNS:      hostNetNS,
		cfg:            cfg,
		pub:            pub,
		logger:         logger,
		m:              m,
		budget:         eventBudget{max: cfg.MaxEventsPerInterval},
		objects:        append(objs, mysqlObject(cfg.SlowQueryThreshold)),
		pgProbes:       pgProbes,
		names:          names{devices: &deviceNames{sysfs: "/sys"}, instances: &instanceNames{onlyKnown: cfg.NetNS != ""}, cgroups: newCgroupNames("/proc/self/mountinfo")},
		samplesSubject: wire.SamplesSubject(cfg.Cluster, cfg.Host),
		eventsSubject:  wire.EventsSubject(cfg.Cluster, cfg.Host),
		started:        make(chan struct{}),
		notable:        make(chan struct{}, 1),
		run:            strconv.FormatInt(time.Now().UnixMilli(), 36),
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
	c.mu.Lock()
	c.attached = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.attached = nil
		c.mu.Unlock()
		p.close()
	}()
	var wg sync.WaitGroup
	var dbs dbAttachers
	if m := p.maps[bpf.DBSockMapDbListeners]; m != nil && c.hookAttached("sock_recv_length") && c.hookAttached("sock_send_length") {
		dbs.pgSock = newDBListeners(dbListenerMaps{tcp: m, unix: p.maps[bpf.DBSockMapDbUnixListeners], ports: p.maps[bpf.DBSockMapDbPorts], hist: p.maps[bpf.DBSockMapDbHist]})
		if c.cfg.PostgresProbes == PostgresProbesPacket {
			// The socket tracepoints stay detached until a server
			// needs them (scanDatabasesOnce).
			dbs.packets = newPacketAttacher(p, c.logger)
			dbs.probes = p
			if s, err := newQuerySampler(p, c.cfg.Interval, float64(c.cfg.QuerySampleQPS), c.logger, c.samplingChanged); err != nil {
				c.logger.Warn("PostgreSQL packet path not sampled when busy", "err", err)
			} else {
				dbs.sampler = s
				c.mu.Lock()
				c.sampler = s
				c.mu.Unlock()
				c.setSamplingRow(1, 0)
				defer s.wait()
				sctx, stopScan := context.WithCancel(ctx)
				wg.Go(func() { c.scanSlowBackends(sctx, s, p.maps[bpf.DBSockMapDbConnStorage], "/proc") })
				defer stopScan()
			}
			if err := p.park(true, socketTracepointPrograms...); err != nil {
				c.logger.Warn("cannot detach the socket tracepoints", "err", err)
			}
		}
	}
	if _, ok := p.specs[bpf.PGProgPgQueryStart]; ok && dbs.pgSock == nil {
		if c.cfg.PostgresProbes != PostgresProbesUSDT {
			c.logger.Warn("PostgreSQL query latency falls back to the USDT probes: the socket tracepoints are not attached (see `mciv doctor`)")
		}
		dbs.pg = newPGAttacher(p, c.pgProbes)
	}
	if _, ok := p.specs[bpf.MySQLProgMysqlDispatchEnter]; ok {
		dbs.my = newMySQLAttacher(p)
	}
	if dbs.pg != nil || dbs.pgSock != nil || dbs.my != nil {
		c.scanDatabasesOnce(dbs, "/proc")
		dctx, stop := context.WithCancel(ctx)
		wg.Go(func() { c.discoverDatabases(dctx, dbs, "/proc") })
		defer func() {
			stop()
			wg.Wait()
			dbs.close()
		}()
	}
	close(c.started)
	if !c.anyAttached() {
		c.logger.Error("NO eBPF hook could be attached: this host publishes only mciv_collector_up; run `mciv doctor` to see why")
	}

	if m := p.maps[bpf.TCPMapEvents]; m != nil && c.anyAttached() {
		rd, err := ringbuf.NewReader(m)
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
	c.loop(ctx, p, dbs.pgSock, dbs.sampler)
	return nil
}

// samplingRow is the Hooks row saying whether the packet path samples.
const samplingRow = "query_sampling"

// samplingChanged reports a switch of the packet path's sampling: a log
// line, the metric and the query_sampling row of Hooks.
func (c *Collector) samplingChanged(every int, qps float64) {
	if every > 1 {
		c.logger.Info("PostgreSQL packet path sampled: the servers are busy", "share", fmt.Sprintf("1/%d", every), "queries_per_second", int(qps), "threshold", c.cfg.QuerySampleQPS)
	} else {
		c.logger.Info("PostgreSQL packet path measures every request again", "queries_per_second", int(qps))
	}
	c.setSamplingRow(every, qps)
}

// setSamplingRow sets the query_sampling row of Hooks and the metric.
func (c *Collector) setSamplingRow(every int, qps float64) {
	row := HookStatus{Name: samplingRow, Type: QueryPathPackets, Attached: true}
	if every > 1 {
		row.Note = fmt.Sprintf("sampled: requests begun in 1/%d of each interval (a window at a random place), counts scaled back (%.0f queries/s reached %d/s)", every, qps, c.cfg.QuerySampleQPS)
	} else {
		row.Note = fmt.Sprintf("every request measured (sampled above %d queries/s)", c.cfg.QuerySampleQPS)
		if c.cfg.QuerySampleQPS < 0 {
			row.Note = "every request measured (query_sample_qps: -1)"
		}
	}
	c.m.querySampleRatio.Set(1 / float64(every))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statuses = slices.DeleteFunc(c.statuses, func(h HookStatus) bool { return h.Name == samplingRow })
	c.statuses = append(c.statuses, row)
}

// attach loads the objects and attaches each hook the first way the kernel
// accepts.
func (c *Collector) attach() *probes {
	if err := rlimit.RemoveMemlock(); err != nil {
		c.logger.Warn("cannot remove the memlock rlimit; kernels before 5.11 may refuse to load", "err", err)
	}
	p := newProbes()
	var rows []HookStatus
	for _, o := range c.objects {
		spec, err := o.load()
		if err == nil {
			err = p.add(spec)
		}
		if err != nil {
			c.logger.Error("eBPF object not loaded: its hooks are missing", "object", o.name, "err", err)
		}
		for _, h := range o.hooks() {
			rows = append(rows, c.attachHook(p, h, err)...)
		}
	}
	c.mu.Lock()
	c.statuses = rows
	c.mu.Unlock()
	return p
}

// attachHook attaches h the first way that works (none if the object
// failed with objErr), reports every way tried and returns the rows.
func (c *Collector) attachHook(p *probes, h hookSpec, objErr error) []HookStatus {
	var tried []HookStatus
	switch {
	case len(h.ways) == 0:
		tried = []HookStatus{{Name: h.name, Error: "no program for this hook in this build"}}
	case objErr != nil:
		tried = []HookStatus{{Name: h.name, Type: h.ways[0].typ, Error: explain("eBPF object", objErr)}}
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
	return tried
}

// hookAttached reports whether the named hook is attached.
func (c *Collector) hookAttached(name string) bool {
	for _, h := range c.Hooks() {
		if h.Name == name && h.Attached {
			return true
		}
	}
	return false
}

func (c *Collector) anyAttached() bool {
	for _, h := range c.Hooks() {
		if h.Attached {
			return true
		}
	}
	return false
}

// loop publishes one batch per interval until ctx ends, and an earlier
// one (at least NotableInterval after the batch began) when a notable
// event arrives; pgSock (nil if none) holds the PostgreSQL servers' query
// latency histograms.
func (c *Collector) loop(ctx context.Context, p *probes, pgSock *dbListeners, sampler *querySampler) {
	var (
		tracker     deltaTracker[bpf.TCPRetransKey]
		aggTracker  deltaTracker[bpf.TCPAggKey]
		lastDropped uint64
		seq         uint64
		early       *time.Timer // armed while an early cut waits for NotableInterval
		earlyC      <-chan time.Time
	)
	start := time.Now()
	budgetStart := start
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		cut := false
		select {
		case <-ctx.Done():
			if early != nil {
				early.Stop()
			}
			return
		case <-t.C:
		case <-c.notable:
			if c.cfg.NotableInterval <= 0 || earlyC != nil {
				continue // off, or already armed
			}
			if wait := c.cfg.NotableInterval - time.Since(start); wait > 0 {
				early = time.NewTimer(wait)
				earlyC = early.C
				continue
			}
			cut = true
		case <-earlyC:
			cut = true
		}
		if early != nil {
			early.Stop()
			early, earlyC = nil, nil
		}
		select {
		case <-c.notable: // events so far are in this batch
		default:
		}
		end := time.Now()
		series := []wire.Series{upSeries()}
		series = append(series, c.readRetransmits(p, &tracker)...)
		agg, queries := c.readAggregates(p, pgSock, sampler, start, end, &aggTracker)
		series = append(series, agg...)
		if sampler != nil {
			if err := sampler.next(ctx, float64(queries)/end.Sub(start).Seconds()); err != nil {
				c.logger.Warn("PostgreSQL packet path sampling", "err", err)
			}
		}
		if m := p.maps[bpf.TCPMapEventsDropped]; m != nil {
			if n, err := readDropped(m); err != nil {
				c.m.mapReadErrors.Inc()
				c.logger.Warn("cannot read the ring buffer drop counter", "err", err)
			} else if n > lastDropped {
				c.m.ringbufDropped.Add(float64(n - lastDropped))
				c.logger.Warn("the kernel dropped events: the ring buffer was full", "dropped", n-lastDropped)
				lastDropped = n
			}
		}
		// The event budget is per Interval, however many early batches
		// it holds.
		if end.Sub(budgetStart) >= c.cfg.Interval-c.cfg.Interval/20 {
			budgetStart = end
			if n := c.budget.reset(); n > 0 {
				c.logger.Debug("events suppressed over the per-interval limit", "suppressed", n, "limit", c.cfg.MaxEventsPerInterval)
			}
		}
		seq++
		if cut {
			// Counted before the batch leaves, so whoever sees the
			// batch also sees it counted.
			c.m.earlyBatches.Inc()
			t.Reset(c.cfg.Interval) // the next normal batch is a full interval away
		}
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

// readRetransmits returns the retransmit series of one interval.
func (c *Collector) readRetransmits(p *probes, tracker *deltaTracker[bpf.TCPRetransKey]) []wire.Series {
	m := p.maps[bpf.TCPMapTcpRetransmits]
	if m == nil {
		return nil
	}
	cur, err := readRetransmits(m)
	if err != nil {
		// The tracker keeps the last good reading: the next interval
		// reports the increase of both.
		c.m.mapReadErrors.Inc()
		c.logger.Warn("cannot read retransmit counters this interval", "err", err)
		return nil
	}
	return retransmitSeries(tracker.update(cur), c.hostNetNS, c.names)
}

// readAggregates returns the series of the aggregates maps (counters and
// histograms of every probe, and the database servers' histograms of
// pgSock if not nil) for the batch from start to end, and the queries of
// the servers the sampler (if not nil) measures, its scale applied.
func (c *Collector) readAggregates(p *probes, pgSock *dbListeners, sampler *querySampler, start, end time.Time, tracker *deltaTracker[bpf.TCPAggKey]) ([]wire.Series, uint64) {
	m := p.maps[bpf.TCPMapAggregates]
	if m == nil {
		return nil, 0
	}
	cur, err := readAggregates(m)
	if err == nil {
		if hot := p.maps[bpf.TCPMapHotAggregates]; hot != nil {
			err = addHotAggregates(cur, hot)
		}
	}
	if err == nil && pgSock != nil {
		err = pgSock.addHistograms(cur)
	}
	if err != nil {
		c.m.mapReadErrors.Inc()
		c.logger.Warn("cannot read the aggregates map this interval", "err", err)
		return nil, 0
	}
	deltas := tracker.update(cur)
	var queries uint64
	if sampler != nil {
		factor, servers := sampler.scale(start, end)
		queries = scaleQueries(deltas, factor, servers)
	}
	series, dropped := aggregateSeries(deltas, c.names, c.cfg.MaxSeriesPerSignal, c.hostNetNS)
	for signal, n := range dropped {
		c.m.seriesDropped.WithLabelValues(signal).Add(float64(n))
		c.logger.Debug("series over the per-signal limit merged into \"other\"", "signal", signal, "merged", n, "limit", c.cfg.MaxSeriesPerSignal)
	}
	return series, queries
}

func (c *Collector) publishBatch(b *wire.Batch) {
	var err error
	if idp, ok := c.pub.(IDPublisher); ok {
		err = idp.PublishID(c.samplesSubject, wire.EncodeBatch(b), c.batchID(b.Seq))
	} else {
		err = c.pub.Publish(c.samplesSubject, wire.EncodeBatch(b))
	}
	if err != nil {
		c.m.publishErrors.WithLabelValues("samples").Inc()
		c.logger.Warn("cannot publish sample batch", "subject", c.samplesSubject, "seq", b.Seq, "err", err)
		return
	}
	c.m.batches.Inc()
}

// batchID is the message id of batch seq of this run: a batch retried
// after an outage is stored once, and a restarted collector (seq from 1
// again) is not taken for a duplicate.
func (c *Collector) batchID(seq uint64) string {
	return c.cfg.Cluster + "." + c.cfg.Host + "." + c.run + "." + strconv.FormatUint(seq, 10)
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
	ev, err := eventOf(raw, c.cfg.Cluster, c.cfg.Host, time.Now(), monotonicNow(), c.names, c.hostNetNS)
	if err != nil {
		c.m.eventsMalformed.Inc()
		c.logger.Debug("malformed event record", "err", err)
		return
	}
	if ev == nil {
		return // another host's (see Config.NetNS)
	}
	if _, notable := notableSignal(ev.Kind); notable {
		select {
		case c.notable <- struct{}{}:
		default: // already signalled
		}
	}
	c.publishEvent(ev)
}

// publishEvent publishes ev if the interval's budget allows.
func (c *Collector) publishEvent(ev *wire.Event) {
	if !c.budget.take() {
		c.m.eventsSuppressed.Inc()
		return
	}
	data, err := wire.EncodeEvent(ev)
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
