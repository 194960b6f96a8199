package steer

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/mciv/mciv/steer/routes"
)

// fakeDP records what an agent programs.
type fakeDP struct {
	mu      sync.Mutex
	entries map[netip.AddrPort]Entry
}

func newFakeDP() *fakeDP { return &fakeDP{entries: map[netip.AddrPort]Entry{}} }

func (f *fakeDP) Set(e Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries[e.Service] = e
	return nil
}
func (f *fakeDP) Delete(a netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.entries, a)
	return nil
}
func (f *fakeDP) Entries() ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Entry
	for _, e := range f.entries {
		out = append(out, e)
	}
	return out, nil
}
func (f *fakeDP) Counts() (map[CountKey]uint64, error) { return map[CountKey]uint64{{1, 1}: 3}, nil }
func (f *fakeDP) Hooks() []Hook                        { return []Hook{{Name: "cgroup/connect4", Attached: true}} }
func (f *fakeDP) Cgroup() string                       { return "/fake" }
func (f *fakeDP) backend(svc string) netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entries[netip.MustParseAddrPort(svc)]
	if len(e.Backends) == 0 {
		return netip.AddrPort{}
	}
	return e.Backends[0].Addr
}

// listener returns a local address that accepts connections.
func listener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

func startBus(t testing.TB, ctx context.Context) (*bus.Embedded, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv, nc, js
}

func eventually(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestControllerAndAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	srv, nc, js := startBus(t, ctx)
	pg0, pg1 := listener(t), listener(t)
	cfg := Config{
		Agent: true, Controller: true, Cgroup: "/fake", StatusFile: t.TempDir() + "/steer.json",
		Services: []ServiceConfig{
			{Name: "pay-rw", Address: "127.77.0.1:5432", Role: "rw", Clusters: []string{"pay"}},
			{Name: "pay-ro", Address: "127.77.0.2:5432", Role: "ro", Clusters: []string{"pay"}},
		},
		Clusters: map[string]ClusterConfig{"pay": {Members: map[string]string{"pg0": pg0, "pg1": pg1}}},
		Interval: yamltime.Duration(50 * time.Millisecond),
	}
	ctl, err := NewController(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	dp := newFakeDP()
	agent, err := NewAgent(cfg, dp, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ctl.Run(ctx, nc, js) }()
	go func() { _ = agent.Run(ctx, nc, js) }()

	// ro: some healthy member; rw: no primary known until the actuator says.
	eventually(t, ctx, "a ro route", func() bool { return dp.backend("127.77.0.2:5432").IsValid() })
	if dp.backend("127.77.0.1:5432").IsValid() {
		t.Fatal("rw routed with no primary known")
	}
	// The actuator's switchover record moves rw to pg1.
	act := &wire.Action{ID: "sw-1", Cluster: "pay", Kind: "switchover", Decision: "acted", Outcome: "succeeded",
		From: "pg0", To: "pg1", Fingerprint: "fp1", At: time.Now()}
	data, _ := wire.EncodeAction(act)
	if _, err := js.Publish(ctx, wire.ActionSubject("pay"), data); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "rw to pg1", func() bool { return dp.backend("127.77.0.1:5432").String() == pg1 })

	// The change is audited, in the alert's thread.
	cons, err := js.OrderedConsumer(ctx, bus.ActionsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.ActionsWildcard}})
	if err != nil {
		t.Fatal(err)
	}
	var audited *wire.Action
	for audited == nil {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("no steer action: %v", err)
		}
		if a, err := wire.DecodeAction(m.Data()); err == nil && a.Kind == "steer" && a.Evidence["service"] == "pay-rw" {
			audited = a
		}
	}
	if audited.Reason != "new connections to pay-rw now go to pg1" || audited.Fingerprint != "fp1" {
		t.Fatalf("audit: %+v", audited)
	}

	// Forged routes are refused; the last route stays.
	kv, err := js.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, forged := range []routes.Route{
		{V: 1, Service: "pay-rw", Role: "ro", Cluster: "pay", Member: "pg0", Addr: pg0},
		{V: 1, Service: "pay-rw", Role: "rw", Cluster: "pay", Member: "evil", Addr: "127.0.0.1:1"},
		{V: 1, Service: "pay-rw", Role: "rw", Cluster: "pay", Member: "pg0", Addr: "127.0.0.1:1"},
	} {
		b, _ := json.Marshal(forged)
		if _, err := kv.Put(ctx, "pay-rw", b); err != nil {
			t.Fatal(err)
		}
		want := forged
		eventually(t, ctx, "refusal of "+want.Member, func() bool {
			for _, s := range agent.Status().Services {
				if s.Name == "pay-rw" && strings.Contains(s.Refused, "refused") && s.Route != nil {
					return true
				}
			}
			return false
		})
		if got := dp.backend("127.77.0.1:5432").String(); got != pg1 {
			t.Fatalf("forged route %+v applied: %s", forged, got)
		}
	}
	// An unlisted service's key is ignored.
	if _, err := kv.Put(ctx, "other", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}

	// Fail static: NATS gone, the routes stay and the status says so.
	ro := dp.backend("127.77.0.2:5432")
	srv.Shutdown()
	eventually(t, ctx, "fail static status", func() bool { return strings.Contains(agent.Status().NATS, "fail static") })
	if dp.backend("127.77.0.1:5432").String() != pg1 || dp.backend("127.77.0.2:5432") != ro {
		t.Fatal("routes changed while NATS was gone")
	}
	st, err := ReadStatus(cfg.StatusFile)
	if err != nil || !strings.Contains(st.NATS, "fail static") || len(st.Services) != 2 {
		t.Fatalf("status file: %+v %v", st, err)
	}
}

func TestAgentRestartAdoptsPinnedRoutes(t *testing.T) {
	dir := testCgroup(t)
	pins := testPinDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, nc, js := startBus(t, ctx)
	a, b := nameServer(t, "A"), nameServer(t, "B")
	cfg := Config{Agent: true, Cgroup: dir, PinDir: pins, StatusFile: t.TempDir() + "/steer.json",
		Services: []ServiceConfig{{Name: "pay-ro", Address: "127.77.0.8:5432", Role: "ro", Clusters: []string{"pay"}}},
		Clusters: map[string]ClusterConfig{"pay": {Members: map[string]string{"a": a.String(), "b": b.String()}}}}
	kv, err := EnsureBucket(ctx, js, DefaultBucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := routes.Route{V: routes.Version, Service: "pay-ro", Role: routes.ReadOnly, Cluster: "pay", Member: "a", Addr: a.String(),
		Spread: []routes.Target{{Cluster: "pay", Member: "a", Addr: a.String(), Weight: 1}, {Cluster: "pay", Member: "b", Addr: b.String(), Weight: 1}}}
	data, _ := json.Marshal(r)
	if _, err := kv.Put(ctx, "pay-ro", data); err != nil {
		t.Fatal(err)
	}
	run := func() (*Agent, *Datapath, context.CancelFunc, chan struct{}) {
		dp, err := OpenDatapath(dir, pins)
		if err != nil {
			t.Fatal(err)
		}
		ag, err := NewAgent(cfg, dp, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		actx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = ag.Run(actx, nc, js); dp.Close(); close(done) }()
		return ag, dp, stop, done
	}
	ag, _, stop, done := run()
	eventually(t, ctx, "the spread applied", func() bool {
		st := ag.Status()
		return st.Services[0].Route != nil && len(st.Services[0].Route.Spread) == 2
	})
	if got := dialFrom(t, ctx, dir, "127.77.0.8:5432", helperTimes+"=20"); got != "A=10 B=10" && !strings.HasPrefix(got, "A=") {
		t.Fatalf("spread: %q", got)
	}
	// The agent stops: new connects are still steered.
	stop()
	<-done
	if got := dialFrom(t, ctx, dir, "127.77.0.8:5432", helperTimes+"=10"); strings.Contains(got, "error") {
		t.Fatalf("after the agent stopped: %q", got)
	}
	// It restarts with NATS gone: it adopts the pinned route (fail static).
	srv.Shutdown()
	ag2, dp2, stop2, done2 := run()
	defer func() { stop2(); <-done2 }()
	for _, h := range dp2.Hooks() {
		if h.Attached && !h.Adopted {
			t.Fatalf("hook %+v attached anew, not adopted", h)
		}
	}
	eventually(t, ctx, "adopted route in the status", func() bool {
		st := ag2.Status()
		rt := st.Services[0].Route
		return rt != nil && len(rt.Spread) == 2 && strings.Contains(rt.Reason, "adopted")
	})
	if got := dialFrom(t, ctx, dir, "127.77.0.8:5432", helperTimes+"=10"); strings.Contains(got, "error") || !strings.Contains(got, "B=") {
		t.Fatalf("after the restart: %q", got)
	}
	// Detach: plain connects (nobody listens on the service address).
	if _, err := Detach(pins); err != nil {
		t.Fatal(err)
	}
	if got := dialFrom(t, ctx, dir, "127.77.0.8:5432", helperTimes+"=3"); got != "error=3" {
		t.Fatalf("after detach: %q", got)
	}
}
