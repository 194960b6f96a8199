package actuator

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeClock is a Clock that moves only when told.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
			continue
		}
		keep = append(keep, w)
	}
	c.waiters = keep
}

// fakeDriver is a failover.Driver over an in-memory topology.
type fakeDriver struct {
	mu         sync.Mutex
	top        failover.Topology
	topErr     error
	topCalls   int
	onTopology func(n int) // called (unlocked) before answering call n (1-based)
	onSwitch   func(req failover.Request) (failover.Result, error)
	switches   []failover.Request
}

func (f *fakeDriver) Name() string { return "fake" }

func (f *fakeDriver) Topology(ctx context.Context) (failover.Topology, error) {
	f.mu.Lock()
	f.topCalls++
	n, hook := f.topCalls, f.onTopology
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.top, f.topErr
}

func (f *fakeDriver) Switchover(ctx context.Context, req failover.Request) (failover.Result, error) {
	f.mu.Lock()
	f.switches = append(f.switches, req)
	hook := f.onSwitch
	f.mu.Unlock()
	if hook != nil {
		return hook(req)
	}
	return failover.Result{Driver: "fake", To: req.To, NewLeader: req.To, Outcome: failover.OutcomeSucceeded}, nil
}

func (f *fakeDriver) Failover(ctx context.Context, req failover.Request) (failover.Result, error) {
	return failover.Result{}, fmt.Errorf("%w: not used", failover.ErrInvalidRequest)
}

func (f *fakeDriver) Switches() []failover.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]failover.Request(nil), f.switches...)
}

const testCluster = "payments"

// labTopology: db-1 leads at 10.0.0.1:5432, db-2 and db-3 replicate.
func labTopology() failover.Topology {
	return failover.Topology{Cluster: testCluster, Members: []failover.Member{
		{Name: "db-1", Role: failover.RoleLeader, State: "running", Host: "10.0.0.1", Port: 5432, Timeline: 4},
		{Name: "db-2", Role: failover.RoleReplica, State: "streaming", Host: "10.0.0.2", Port: 5432, Timeline: 4, LagBytes: 0},
		{Name: "db-3", Role: failover.RoleReplica, State: "streaming", Host: "10.0.0.3", Port: 5432, Timeline: 4, LagBytes: 100},
	}}
}

// startNATS runs an embedded server for the test and returns JetStream on it.
func startNATS(t testing.TB) (*bus.Embedded, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, err := bus.Connect(ctx, emb.URL(), bus.ConnectOptions{Name: "actuator-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	return emb, js
}

// testConfig is a config with small windows for unit tests.
func testConfig(bucket string) Config {
	return Config{
		Enabled:  true,
		Rules:    map[string]Policy{"pg_latency": {When: WhenPrimary}},
		Persist:  Duration(10 * time.Second),
		KVBucket: bucket,
	}
}

type harness struct {
	t      *testing.T
	js     jetstream.JetStream
	ackJS  jetstream.JetStream // publishes approvals (nil: js)
	signer *auth.Signer        // signs approvals (nil: unsigned)
	clock  *fakeClock
	drv    *fakeDriver
	act    *Actuator
	decs   chan wire.Action
}

func newHarness(t *testing.T, js jetstream.JetStream, bucket string, mutate func(*Config)) *harness {
	t.Helper()
	return newHarnessOpts(t, js, bucket, mutate, nil)
}

// newHarnessOpts is newHarness with the actuator's options changed by
// opts (a Verifier, say).
func newHarnessOpts(t *testing.T, js jetstream.JetStream, bucket string, mutate func(*Config), opts func(*Options)) *harness {
	t.Helper()
	cfg := testConfig(bucket)
	cfg.Approvers = []string{"U123"}
	if mutate != nil {
		mutate(&cfg)
	}
	h := &harness{t: t, js: js, clock: newFakeClock(), drv: &fakeDriver{top: labTopology()}, decs: make(chan wire.Action, 16)}
	o := Options{
		Config: cfg, JS: js, Drivers: map[string]failover.Driver{testCluster: h.drv}, Clock: h.clock,
		Holder: "test-" + bucket, OnDecision: func(a wire.Action) { h.decs <- a },
	}
	if opts != nil {
		opts(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.act = a
	return h
}

// batch feeds one batch from host; degraded makes it see peer as degraded.
func (h *harness) batch(host string, degradedPeers ...string) {
	b := &wire.Batch{Cluster: testCluster, Host: host, Start: h.clock.Now(), Interval: time.Second,
		Series: []wire.Series{{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}}}
	for _, p := range degradedPeers {
		b.Series = append(b.Series, wire.Series{Signal: "tcp_retransmits_total", Kind: wire.KindCounter,
			Labels: []wire.Label{{Name: "local_port", Value: "40000"}, {Name: "peer", Value: p}}, Value: 7})
	}
	h.act.Observe(b)
}

const primaryAddr = "10.0.0.1:5432"

// healthyEvidence: three seconds of batches in which db-2 and db-3 see
// the primary degraded and db-1 still reports.
func (h *harness) healthyEvidence() {
	for i := 0; i < 3; i++ {
		h.batch("db-1")
		h.batch("db-2", primaryAddr)
		h.batch("db-3", primaryAddr)
		h.clock.Advance(time.Second)
	}
}

// alert returns a firing alert about host that started ago before now.
func (h *harness) alert(host string, ago time.Duration) *wire.Alert {
	return &wire.Alert{
		V: wire.Version, Fingerprint: "fp-" + host, Rule: "pg_latency", State: wire.StateFiring,
		Labels: map[string]string{"cluster": testCluster, "host": host},
		Signal: "latency", Stat: "p99", Value: 0.12, Baseline: 0.01, Threshold: 0.05,
		StartsAt: h.clock.Now().Add(-ago), At: h.clock.Now(),
	}
}

// handle tracks and handles al synchronously.
func (h *harness) handle(al *wire.Alert) wire.Action {
	h.t.Helper()
	if !h.act.Track(al) {
		h.t.Fatalf("alert %s not tracked as a failover alert", al.Fingerprint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h.act.Handle(ctx, al)
}

// lastAudit reads the newest audit record of the test cluster from the stream.
func lastAudit(t *testing.T, js jetstream.JetStream) wire.Action {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, bus.ActionsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, wire.ActionSubject(testCluster))
	if err != nil {
		t.Fatal(err)
	}
	a, err := wire.DecodeAction(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return *a
}
