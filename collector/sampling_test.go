package collector

import (
	"context"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/lab/pglab"
	"github.com/mciv/mciv/internal/wire"
)

func TestSampleDecision(t *testing.T) {
	const above = 1000
	type step struct {
		qps       float64
		wantEvery int
	}
	for _, c := range []struct {
		name     string
		eligible bool
		steps    []step
	}{
		{"quiet", true, []step{{10, 1}, {999, 1}}},
		{"busy", true, []step{{1000, querySampleEvery}, {5000, querySampleEvery}}},
		// Below half the threshold for querySampleCalmIntervals (5)
		// intervals in a row ends sampling; a busy interval between
		// restarts the count; between half and all of it keeps it.
		{"calm", true, []step{{2000, 4}, {0, 4}, {0, 4}, {0, 4}, {0, 4}, {2000, 4}, {600, 4}, {0, 4}, {0, 4}, {0, 4}, {0, 4}, {0, 1}, {600, 1}}},
		{"not eligible", false, []step{{5000, 1}}},
	} {
		every, calm := 1, 0
		for i, s := range c.steps {
			every, calm = sampleDecision(every, calm, s.qps, above, c.eligible)
			if every != s.wantEvery {
				t.Errorf("%s: step %d (%v q/s): every %d, want %d", c.name, i, s.qps, every, s.wantEvery)
			}
		}
	}
	if every, _ := sampleDecision(1, 0, 1e9, 0, true); every != 1 {
		t.Errorf("threshold 0 (never): every %d", every)
	}
}

func TestSamplerScale(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, c := range []struct {
		name             string
		every            int
		winStart, winEnd time.Time
		start, end       time.Time
		want             float64
	}{
		{"every request", 1, ms(0), ms(250), ms(0), ms(1000), 1},
		{"window of a quarter", 4, ms(0), ms(250), ms(0), ms(1000), 4},
		{"window late to close", 4, ms(2), ms(302), ms(0), ms(1200), 4},
		{"cut short in the window", 4, ms(0), time.Time{}, ms(0), ms(200), 1},
		{"cut short after the window", 4, ms(0), ms(250), ms(0), ms(500), 2},
		{"window begun in the batch before", 4, ms(900), ms(1150), ms(1000), ms(2000), 1000.0 / 150},
		{"no window in the batch", 4, ms(0), ms(250), ms(500), ms(1000), 1},
	} {
		s := &querySampler{every: c.every, winStart: c.winStart, winEnd: c.winEnd}
		if got, _ := s.scale(c.start, c.end); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: scale %v, want %v", c.name, got, c.want)
		}
	}
}

func TestScaleQueries(t *testing.T) {
	k := func(signal uint16, aux, bucket uint32) bpf.TCPAggKey {
		return bpf.TCPAggKey{Signal: signal, Aux: aux, Bucket: bucket}
	}
	d := map[bpf.TCPAggKey]uint64{
		k(bpf.AggDBQuerySeconds, 7, 400):              3,
		k(bpf.AggDBQuerySeconds, 7, 500):              2,
		k(bpf.AggDBQuerySeconds, 7, bpf.AggSumBucket): 1000,
		k(bpf.AggDBQuerySeconds, 8, 400):              5, // not sampled (another server: MySQL, say)
		k(bpf.AggTCPRTTSeconds, 7, 400):               9,
	}
	n := scaleQueries(d, 4, map[uint32]bool{7: true})
	if n != 20 {
		t.Errorf("queries %d, want (3+2)*4", n)
	}
	want := map[bpf.TCPAggKey]uint64{
		k(bpf.AggDBQuerySeconds, 7, 400):              12,
		k(bpf.AggDBQuerySeconds, 7, 500):              8,
		k(bpf.AggDBQuerySeconds, 7, bpf.AggSumBucket): 4000,
		k(bpf.AggDBQuerySeconds, 8, 400):              5,
		k(bpf.AggTCPRTTSeconds, 7, 400):               9,
	}
	for key, v := range want {
		if d[key] != v {
			t.Errorf("%+v: %d, want %d", key, d[key], v)
		}
	}
}

// TestPostgresPacketsSampled runs a real PostgreSQL, busy enough for the
// packet path to sample (a low threshold): the collector must say so
// (the query_sampling row and the metric), its scaled query count must
// come near the queries run, and a slow query that outlasts its window
// must still be measured whole and reported with its normalised text.
func TestPostgresPacketsSampled(t *testing.T) {
	requireKernel(t)
	pg := startPGIn(t, serverCgroup(t))
	r := runKernelCollectorFor(t, Config{Interval: 200 * time.Millisecond, PostgresDiscoveryInterval: 200 * time.Millisecond, QuerySampleQPS: 100}, only("tcp", "dbsock"), pg.Pid())
	r.waitDBScan(t)
	if row := r.queryPath(t, pg.Instance()); row.Type != QueryPathPackets {
		t.Fatalf("query latency row %+v, want %q", row, QueryPathPackets)
	}
	if row := r.samplingRow(); !strings.HasPrefix(row.Note, "every request measured") {
		t.Errorf("query_sampling row of an idle server: %+v", row)
	}
	r.drain(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The load: runs of 2,000 queries, one connection, until stopped.
	const perRun = 2000
	load := startLoad(t, ctx, pg, perRun)
	stopLoad := func() {
		if err := load.stop(); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	defer stopLoad()

	// Sampling starts.
	deadline := time.Now().Add(time.Minute)
	for !r.sampled() {
		if time.Now().After(deadline) {
			t.Fatalf("not sampled under load: %+v", r.c.Hooks())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := testutil.ToFloat64(r.c.m.querySampleRatio); v != 1.0/querySampleEvery {
		t.Errorf("mciv_collector_query_sample_ratio %v while sampled", v)
	}
	// The RTT program is windowed too: detached most of the time.
	r.c.mu.Lock()
	p := r.c.attached
	r.c.mu.Unlock()
	for !p.isParked(bpf.TCPProgTcpProbeBtf) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never detached while sampling", bpf.TCPProgTcpProbeBtf)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Slow queries beside the load, back to back on one connection:
	// each lasts longer than a window (50 ms of each 200 ms interval),
	// and a quarter of them begin in one.
	const slow = 24
	if out, err := pg.Pgbench(ctx, "SELECT pg_sleep(0.3), t.* FROM (VALUES (42, 'bob')) AS t(id, name) WHERE name = 'bob';", slow, pglab.Simple); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !r.sampled() {
		t.Fatalf("sampling ended under load: %+v", r.c.Hooks())
	}
	stopLoad()
	ran := uint64(load.runs.Load())*perRun + slow

	// Everything measured by now: until sampling ends (after five calm
	// intervals) and two more batches.
	key := pgQueryKey(pg, "simple")
	var count, long uint64
	var maxSeen float64
	add := func(sum map[string]*wire.Series) {
		if s := sum[key]; s != nil && s.Hist != nil {
			count = s.Hist.Count
			long, maxSeen = 0, 0
			for _, b := range s.Hist.Buckets {
				v := histo.Value(b.Index)
				if v >= 0.29 {
					long += b.Count
				}
				maxSeen = max(maxSeen, v)
			}
		}
	}
	sum := r.collect(t, time.Minute, func(sum map[string]*wire.Series) bool { add(sum); return !r.sampled() })
	add(sum)
	t.Logf("queries run %d, measured (scaled) %d; %d of them 0.29 s or longer; the longest %.3f s", ran, count, long, maxSeen)
	if float64(count) < 0.5*float64(ran) || float64(count) > 1.6*float64(ran) {
		t.Errorf("measured %d queries (scaled), ran %d", count, ran)
	}
	if long == 0 {
		t.Errorf("no query of 0.3 s measured while sampled")
	}
	if maxSeen > 2 {
		t.Errorf("a query measured %.3f s: a request's start outlived a gap in sampling", maxSeen)
	}
	for {
		select {
		case e := <-r.events:
			if e.Kind != eventKindSlowQuery || !strings.Contains(e.Text, "VALUES") {
				continue
			}
			t.Logf("slow query event: %+v", e)
			if e.Value < 0.3 || strings.Contains(e.Text, "bob") || !strings.Contains(e.Text, "pg_sleep($") {
				t.Errorf("event %+v", e)
			}
			return
		default:
			t.Fatalf("no db_slow_query event for the %d slow queries run while sampled", slow)
		}
	}
}

// pgLoad is pgbench run after run of "SELECT 1;" on one connection.
type pgLoad struct {
	runs atomic.Int64 // the runs completed
	halt atomic.Bool
	wg   sync.WaitGroup
	err  chan error
}

// startLoad starts runs of perRun queries on pg until stop.
func startLoad(t *testing.T, ctx context.Context, pg *pglab.Server, perRun int) *pgLoad {
	l := &pgLoad{err: make(chan error, 1)}
	l.wg.Go(func() {
		for !l.halt.Load() {
			if out, err := pg.Pgbench(ctx, "SELECT 1;", perRun, pglab.Simple); err != nil {
				l.err <- err
				t.Logf("%s", out)
				return
			}
			l.runs.Add(1)
		}
	})
	return l
}

// stop ends the load after the run in progress and returns its error,
// if it failed (once).
func (l *pgLoad) stop() error {
	l.halt.Store(true)
	l.wg.Wait()
	select {
	case err := <-l.err:
		return err
	default:
		return nil
	}
}

// sampled reports whether the collector says its packet path samples.
func (r *running) sampled() bool {
	return strings.HasPrefix(r.samplingRow().Note, "sampled")
}

// samplingRow returns the collector's query_sampling row (zero if none).
func (r *running) samplingRow() HookStatus {
	for _, h := range r.c.Hooks() {
		if h.Name == samplingRow {
			return h
		}
	}
	return HookStatus{}
}

// TestQuerySampleQPSSection: query_sample_qps reaches the Config (0: the
// default, -1: never), and a rate below -1 names the field.
func TestQuerySampleQPSSection(t *testing.T) {
	s := DefaultSection()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := New(s.Config("c", "h"), nopPublisher{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.QuerySampleQPS != DefaultQuerySampleQPS {
		t.Errorf("default: %d", c.cfg.QuerySampleQPS)
	}
	s.QuerySampleQPS = -1
	if err := s.Validate(); err != nil || s.Config("c", "h").QuerySampleQPS != -1 {
		t.Errorf("-1: %v, %d", err, s.Config("c", "h").QuerySampleQPS)
	}
	if !strings.Contains(samplingPolicy(-1), "every request") || !strings.Contains(samplingPolicy(500), "above 500 queries/s") {
		t.Errorf("policy texts %q, %q", samplingPolicy(-1), samplingPolicy(500))
	}
	s.QuerySampleQPS = -2
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "collector.query_sample_qps") {
		t.Errorf("-2: %v", err)
	}
}
