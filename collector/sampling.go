package collector

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/mciv/mciv/bpf"
)

// Sampling of the packet path. Each request costs the server a run of
// each packet program, and each TCP segment a run of the RTT program: on
// a 2-core VM about 1 us of eBPF per pgbench -S transaction (kernel
// run-time statistics), most of it cache misses on the socket and its
// storage, and more in hook overhead around the programs; at tens of
// thousands of queries a second that is a few percent of the server.
// Above a query rate (Config.QuerySampleQPS), the collector therefore
// attaches db_skb_ingress (and the RTT program, windowedPrograms) for
// only 1/querySampleEvery of each interval (the window, at a random place
// in it), and keeps db_skb_egress attached until every request begun in
// the window has been answered (the kernel counts them), however slow, up
// to querySampleHold: the latency of a sampled request is exact, and a
// slow query that begins in a window is reported with its text. A
// batch's query counts and latency sums are multiplied by its length
// over the time the ingress program was attached in it (about
// querySampleEvery; less for a batch cut short by a notable event); the
// histogram's shape is that of the requests begun in the windows. A slow
// query that begins outside every window is caught by the backends'
// process titles instead (slowscan.go), timed to about a scan period.
//
// Sampling applies only while every PostgreSQL server is measured
// through its packets (none by the socket tracepoints, whose counts
// would be scaled too). It starts in the interval after one whose
// (scaled) rate reached the threshold, and stops after
// querySampleCalmIntervals intervals below half of it, so that a rate
// near the threshold does not flap.
const (
	// DefaultQuerySampleQPS is the query rate (all servers measured
	// through their packets together) above which the packet path is
	// sampled.
	DefaultQuerySampleQPS = 2000
	// querySampleEvery: a sampled interval measures the requests begun
	// in 1/querySampleEvery of it.
	querySampleEvery = 4
	// querySampleHold bounds how long db_skb_egress stays attached after
	// a window for the requests begun in it.
	querySampleHold = 30 * time.Second
	// querySampleCalmIntervals is how many intervals in a row below half
	// the threshold end sampling.
	querySampleCalmIntervals = 5
	// querySamplePoll is how often the end of a window's requests is
	// looked for.
	querySamplePoll = 5 * time.Millisecond
)

// windowedPrograms are attached only in the windows while the packet path
// samples: the ingress packet program, and the RTT program, which runs
// for every TCP segment of the host (a busy server's above all) and keeps
// a sample of them anyway (see bpf/tcp.bpf.c): while sampling,
// tcp_rtt_seconds holds the samples of the windows, a quarter as many.
var windowedPrograms = []string{bpf.DBSockProgDbSkbIngress, bpf.TCPProgTcpProbeBtf, bpf.TCPProgTcpProbeTp}

// Slots of the kernel's db_sample map (bpf/dbsock.bpf.c).
const (
	sampleGen      = 0
	sampleInflight = 1
	sampleOn       = 2
)

// querySampler switches the packet programs between measuring every
// request and sampling windows. Safe for concurrent use.
type querySampler struct {
	p        *probes
	m        *ebpf.Map // db_sample
	interval time.Duration
	above    float64 // queries per second; <= 0 never samples
	logger   *slog.Logger
	// changed is told the new rate (1 or 1/querySampleEvery) when it
	// changes.
	changed func(every int, qps float64)
	// windowed are the programs attached only in windows while sampling.
	windowed []string

	mu       sync.Mutex
	every    int             // 1: every request; querySampleEvery: windows
	winStart time.Time       // when the current window's ingress was attached
	winEnd   time.Time       // when it was detached; zero while attached
	upSince  time.Time       // since when db_skb_egress has been attached throughout
	calm     int             // intervals in a row below half the threshold
	epoch    uint64          // windows begun: a window's goroutine stops when a later one begins
	gen      uint64          // db_sample's generation
	egressUp bool            // db_skb_egress attached since the last generation
	servers  map[uint32]bool // postmaster pids measured through their packets
	eligible bool            // every server measured through its packets
	wg       sync.WaitGroup
	// closed, a test hook: while it is true no window opens, and
	// sampling neither starts nor stops.
	closed atomic.Bool
}

func newQuerySampler(p *probes, interval time.Duration, above float64, logger *slog.Logger, changed func(int, float64)) (*querySampler, error) {
	m := p.maps[bpf.DBSockMapDbSample]
	if m == nil {
		return nil, fmt.Errorf("no %s map", bpf.DBSockMapDbSample)
	}
	return &querySampler{p: p, m: m, interval: interval, above: above, logger: logger, changed: changed, every: 1, egressUp: true, windowed: windowedPrograms}, nil
}

// setServers says which servers are measured through their packets, and
// whether all are (else sampling stops).
func (s *querySampler) setServers(pids map[uint32]bool, all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servers = pids
	s.eligible = all && len(pids) > 0
}

// sampling returns the servers measured through their packets, and
// whether their packet path samples.
func (s *querySampler) sampling() (map[uint32]bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servers, s.every > 1
}

// scale returns the factor of the counts of the batch from start to end
// (its length over the time ingress was attached in it: about
// querySampleEvery; 1 while every request is measured), and the servers
// it applies to.
func (s *querySampler) scale(start, end time.Time) (float64, map[uint32]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.every == 1 {
		return 1, s.servers
	}
	from, to := s.winStart, s.winEnd
	if from.Before(start) {
		from = start
	}
	if to.IsZero() || to.After(end) {
		to = end
	}
	if !to.After(from) {
		return 1, s.servers // no window in the batch: nothing measured to scale
	}
	return float64(end.Sub(start)) / float64(to.Sub(from)), s.servers
}

// next starts the next interval, given the (scaled) query rate of the
// packet-path servers in the one that ended.
func (s *querySampler) next(ctx context.Context, qps float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var want int
	want, s.calm = sampleDecision(s.every, s.calm, qps, s.above, s.eligible)
	if s.closed.Load() {
		want, s.calm = s.every, 0 // nothing measured: the rate says nothing
	}
	s.epoch++
	if s.every == 1 && want > 1 {
		// Counts left from an earlier sampling spell (a connection
		// closed with a request in flight) would hold egress up.
		if err := s.m.Put(uint32(sampleInflight), uint64(0)); err != nil {
			return fmt.Errorf("sampling: zero the in-flight count: %w", err)
		}
		s.upSince = time.Now()
	}
	if want != s.every && s.changed != nil {
		s.changed(want, qps)
	}
	if want == 1 {
		if s.every == 1 {
			return nil
		}
		s.every = 1
		return s.startGeneration(false)
	}
	s.every = want
	// The window's place in the interval is drawn at random: a fixed
	// one would, in step with a periodic job (a slow query every few
	// hundred milliseconds, say), miss it every time. Until the window,
	// ingress is detached (the last interval's window may be open yet).
	if err := s.p.park(true, s.windowed...); err != nil {
		return fmt.Errorf("sampling: detach the windowed programs: %w", err)
	}
	if s.winEnd.IsZero() {
		s.winEnd = time.Now()
	}
	window := s.interval / querySampleEvery
	offset := time.Duration(0)
	if room := s.interval - window - s.interval/20; room > 0 {
		offset = time.Duration(rand.Int64N(int64(room)))
	}
	epoch := s.epoch
	s.wg.Go(func() { s.window(ctx, epoch, offset, window) })
	return nil
}

// samplingPolicy says when the packet path samples, for `mciv doctor`.
func samplingPolicy(above int) string {
	if above <= 0 {
		return "every request measured (query_sample_qps: -1)"
	}
	return fmt.Sprintf("above %d queries/s (query_sample_qps) sampled: requests begun in 1/%d of each interval (a window at a random place), counts scaled back (the query_sampling row of a running collector and mciv_collector_query_sample_ratio say when); slow queries begun outside the windows caught from the backends' process titles every %s", above, querySampleEvery, slowScanPeriod)
}

// sampleDecision returns the sampling of the next interval (1 or
// querySampleEvery) and the calm intervals counted, given the current
// ones, the query rate of the interval that ended, the threshold (<= 0:
// never) and whether sampling may apply.
func sampleDecision(every, calm int, qps, above float64, eligible bool) (int, int) {
	switch {
	case !eligible || above <= 0:
		return 1, 0
	case qps >= above:
		return querySampleEvery, 0
	case qps < above/2:
		calm++
		if calm >= querySampleCalmIntervals {
			return 1, 0
		}
		return every, calm
	}
	return every, 0
}

// startGeneration attaches both programs, on (sampled) or off: a new
// generation first if db_skb_egress was detached since the last one.
// Called with s.mu held.
func (s *querySampler) startGeneration(on bool) error {
	if !s.egressUp {
		s.upSince = time.Now()
		s.gen++
		if err := s.m.Put(uint32(sampleInflight), uint64(0)); err != nil {
			return fmt.Errorf("sampling: zero the in-flight count: %w", err)
		}
		if err := s.m.Put(uint32(sampleGen), s.gen); err != nil {
			return fmt.Errorf("sampling: new generation: %w", err)
		}
	}
	v := uint64(0)
	if on {
		v = 1
	}
	if err := s.m.Put(uint32(sampleOn), v); err != nil {
		return fmt.Errorf("sampling: switch: %w", err)
	}
	s.egressUp = true
	// The window begins midway through attaching (which takes a while
	// on a busy host), and ends midway through detaching.
	t0 := time.Now()
	err := s.p.park(false, append([]string{bpf.DBSockProgDbSkbEgress}, s.windowed...)...)
	s.winStart, s.winEnd = midway(t0, time.Now()), time.Time{}
	return err
}

// midway returns the time halfway from a to b.
func midway(a, b time.Time) time.Time { return a.Add(b.Sub(a) / 2) }

// window attaches both packet programs offset into the interval begun as
// epoch, detaches db_skb_ingress window later, then db_skb_egress once
// the window's requests (and any left from the last window) are
// answered; unless a later interval began meanwhile.
func (s *querySampler) window(ctx context.Context, epoch uint64, offset, window time.Duration) {
	// Before the window: the last window's requests may be in flight yet.
	if !s.settleEgress(ctx, epoch, time.Now().Add(offset)) {
		return
	}
	s.mu.Lock()
	if s.epoch != epoch || s.closed.Load() {
		s.mu.Unlock()
		return
	}
	err := s.startGeneration(true)
	s.mu.Unlock()
	if err != nil {
		s.logger.Warn("sampling: cannot open a window", "err", err)
		return
	}
	if !sleepCtx(ctx, window) {
		return
	}
	s.mu.Lock()
	if s.epoch != epoch {
		s.mu.Unlock()
		return
	}
	t0 := time.Now()
	if err := s.p.park(true, s.windowed...); err != nil {
		s.logger.Warn("sampling: cannot detach the windowed programs", "err", err)
	} else {
		s.winEnd = midway(t0, time.Now())
	}
	s.mu.Unlock()
	s.settleEgress(ctx, epoch, time.Time{})
}

// settleEgress detaches db_skb_egress, while ingress is detached, as soon
// as no request begun in a window is in flight, looking every
// querySamplePoll until until (zero: until done); it returns whether
// until came (or egress was down already) with epoch still current.
func (s *querySampler) settleEgress(ctx context.Context, epoch uint64, until time.Time) bool {
	for {
		s.mu.Lock()
		done := s.epoch != epoch || !s.egressUp
		s.mu.Unlock()
		if done {
			break
		}
		var n uint64
		err := s.m.Lookup(uint32(sampleInflight), &n)
		s.mu.Lock()
		// A connection closed with a request in flight leaves a count
		// that never ends: egress goes after querySampleHold anyway,
		// and the next generation starts afresh.
		if s.epoch == epoch && s.egressUp && (err != nil || int64(n) <= 0 || time.Since(s.upSince) >= querySampleHold) {
			if err != nil {
				s.logger.Warn("sampling: cannot read the in-flight count", "err", err)
			}
			if err := s.p.park(true, bpf.DBSockProgDbSkbEgress); err != nil {
				s.logger.Warn("sampling: cannot detach the egress packet program", "err", err)
			} else {
				s.egressUp = false
			}
		}
		s.mu.Unlock()
		wait := querySamplePoll
		if !until.IsZero() {
			left := time.Until(until)
			if left <= 0 {
				break
			}
			wait = min(wait, left)
		}
		if !sleepCtx(ctx, wait) {
			return false
		}
	}
	if !until.IsZero() && !sleepCtx(ctx, time.Until(until)) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch == epoch
}

// wait waits for the windows' goroutines (after their context ended).
func (s *querySampler) wait() { s.wg.Wait() }

// sleepCtx sleeps d, or less if ctx ends: then it returns false.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// scaleQueries multiplies the db_query_seconds deltas of servers by
// factor (each rounded), and returns their query count (scaled).
func scaleQueries(deltas map[bpf.TCPAggKey]uint64, factor float64, servers map[uint32]bool) uint64 {
	var n uint64
	for k, v := range deltas {
		if k.Signal != bpf.AggDBQuerySeconds || !servers[k.Aux] {
			continue
		}
		if factor != 1 {
			v = uint64(math.Round(float64(v) * factor))
			deltas[k] = v
		}
		if k.Bucket != bpf.AggSumBucket {
			n += v
		}
	}
	return n
}
