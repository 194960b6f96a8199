package collector

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
)

// running is a collector running on this kernel for one test, publishing
// into channels.
type running struct {
	c       *Collector
	batches chan *wire.Batch
	events  chan *wire.Event
}

// runKernelCollector starts a collector with cfg (cluster and host filled
// in) whose objects are edited by edit (nil: the default), and stops it
// when the test ends.
func runKernelCollector(t *testing.T, cfg Config, edit func([]object) []object) *running {
	t.Helper()
	return runKernelCollectorFor(t, cfg, edit)
}

// runKernelCollectorFor is runKernelCollector measuring only the
// PostgreSQL servers of the postmaster pids given (all if none): the
// other servers of a shared machine change what a collector attaches.
func runKernelCollectorFor(t *testing.T, cfg Config, edit func([]object) []object, pids ...int) *running {
	t.Helper()
	cfg.Cluster, cfg.Host = "test", "kernel"
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	pub := &decodingPublisher{t: t, batches: make(chan *wire.Batch, 4096), events: make(chan *wire.Event, 4096)}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := New(cfg, pub, prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		c.objects = edit(c.objects)
	}
	if len(pids) > 0 {
		c.pgOnly = func(pid int) bool { return slices.Contains(pids, pid) }
	}
	runStarted(t, c)
	return &running{c: c, batches: pub.batches, events: pub.events}
}

// runStarted runs c until the test ends and waits, up to a minute, until
// it has started.
func runStarted(t *testing.T, c *Collector) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-c.Started():
	case <-time.After(time.Minute):
		t.Fatal("collector did not start within a minute")
	}
}

// decodingPublisher decodes what the collector publishes.
type decodingPublisher struct {
	t       *testing.T
	batches chan *wire.Batch
	events  chan *wire.Event
}

func (p *decodingPublisher) Publish(subject string, data []byte) error {
	if b, err := wire.DecodeBatch(data); err == nil {
		select {
		case p.batches <- b:
		default:
		}
		return nil
	}
	if e, err := wire.DecodeEvent(data); err == nil {
		select {
		case p.events <- e:
		default:
		}
	}
	return nil
}

// requireAttached fails the test unless each named hook is attached.
func (r *running) requireAttached(t *testing.T, hooks ...string) {
	t.Helper()
	up := map[string]string{}
	for _, h := range r.c.Hooks() {
		if h.Attached {
			up[h.Name] = h.Type
		}
	}
	for _, h := range hooks {
		if _, ok := up[h]; !ok {
			t.Fatalf("hook %s not attached: %+v", h, r.c.Hooks())
		}
	}
}

// waitDBScan waits until a look for database servers that began after
// this call has completed: a server started before the call is known to
// the collector then (named, and in the socket listener maps).
func (r *running) waitDBScan(t *testing.T) {
	t.Helper()
	want := r.c.dbScans.Load() + 2 // the scan under way now may have begun before
	deadline := time.Now().Add(time.Minute)
	for r.c.dbScans.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("no scan for database servers completed within a minute (%d done)", r.c.dbScans.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drain discards the batches published so far and waits for two more,
// so that whatever was observed before the call (and not yet collected)
// is left out of the next collect. The collector publishes a batch every
// interval into a deep queue: taking a fixed number of batches instead
// reads only the oldest, and a query measured after them (a slow psql,
// on a loaded machine) would be counted by the next collect.
func (r *running) drain(t *testing.T) {
	t.Helper()
	for queued := true; queued; {
		select {
		case <-r.batches:
		default:
			queued = false
		}
	}
	// The first batch may have read the maps before this call; the
	// second began after it.
	r.collect(t, 10*time.Second, func() func(map[string]*wire.Series) bool {
		n := 0
		return func(map[string]*wire.Series) bool { n++; return n >= 2 }
	}())
}

// collect adds up the series of every batch until pred holds for the sum
// or the timeout passes; it returns the sum keyed by signal and labels.
func (r *running) collect(t *testing.T, timeout time.Duration, pred func(map[string]*wire.Series) bool) map[string]*wire.Series {
	t.Helper()
	sum := map[string]*wire.Series{}
	deadline := time.After(timeout)
	for {
		select {
		case b := <-r.batches:
			for _, s := range b.Series {
				k := s.Signal + "{" + labelString(s.Labels) + "}"
				prev, ok := sum[k]
				if !ok {
					cp := s
					if s.Hist != nil {
						h := *s.Hist
						cp.Hist = &h
					}
					sum[k] = &cp
					continue
				}
				prev.Value += s.Value
				if s.Hist != nil {
					mergeInto(prev, s.Hist)
				}
			}
			if pred(sum) {
				return sum
			}
		case <-deadline:
			for k := range sum {
				t.Logf("seen: %s", k)
			}
			t.Fatalf("condition not met within %s", timeout)
		}
	}
}

func mergeInto(s *wire.Series, h *wire.Histogram) {
	cp := *h
	cp.Buckets = append([]wire.Bucket(nil), h.Buckets...)
	if s.Hist == nil {
		s.Hist = &cp
		return
	}
	merged := *s.Hist
	merged.Buckets = append([]wire.Bucket(nil), s.Hist.Buckets...)
	s.Hist = histo.Merge(&merged, &cp)
}

// only returns an edit that keeps the named objects.
func only(names ...string) func([]object) []object {
	return func(objs []object) []object {
		var out []object
		for _, o := range objs {
			for _, n := range names {
				if o.name == n {
					out = append(out, o)
				}
			}
		}
		return out
	}
}
