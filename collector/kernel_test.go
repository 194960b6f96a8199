package collector

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/lossnet"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

// TestRetransmitsEndToEnd runs the collector on this kernel: real TCP
// retransmits, caused by nftables dropping 20% of a stream's packets in a
// private network namespace, must show up in the batches on NATS with the
// stream's peer and local port, and as events; once the loss is cleared,
// batches must stop reporting increases for that peer. It runs once with
// the collector's own choice of hook (tp_btf here) and once with only the
// classic tracepoint, the fallback for kernels without tp_btf.
func TestRetransmitsEndToEnd(t *testing.T) {
	requireKernel(t)
	testenv.RequireCommand(t, "ip", "nft")
	testenv.ExclusiveKernel(t)
	t.Run("preferred", func(t *testing.T) {
		testRetransmits(t, "", "mciv-collector-test")
	})
	t.Run("tracepoint", func(t *testing.T) {
		testRetransmits(t, HookTypeTracepoint, "mciv-collector-tp")
	})
}

// testRetransmits runs the end-to-end check; onlyType, if set, restricts
// the collector to that way of attaching.
func testRetransmits(t *testing.T, onlyType, netns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const cluster, host = "test", "kernel"
	batches := make(chan *nats.Msg, 4096)
	events := make(chan *nats.Msg, 4096)
	for subj, ch := range map[string]chan *nats.Msg{
		wire.SamplesSubject(cluster, host): batches,
		wire.EventsSubject(cluster, host):  events,
	} {
		sub, err := nc.ChanSubscribe(subj, ch)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := New(Config{Cluster: cluster, Host: host, Interval: 200 * time.Millisecond}, nc, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if onlyType != "" {
		c.objects = onlyWays(c.objects, onlyType)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-c.Started():
	case <-ctx.Done():
		t.Fatal("collector did not start")
	}
	attached := ""
	for _, h := range c.Hooks() {
		t.Logf("hook %s %s attached=%v %s", h.Name, h.Type, h.Attached, h.Error)
		if h.Name == "tcp_retransmit_skb" && h.Attached {
			attached = h.Type
		}
	}
	if attached == "" || onlyType != "" && attached != onlyType {
		t.Fatalf("tcp_retransmit_skb attached via %q", attached)
	}
	if v := testutil.ToFloat64(c.m.hookUp.WithLabelValues("tcp_retransmit_skb")); v != 1 {
		t.Fatalf("mciv_collector_hook_up = %v", v)
	}

	lab, err := lossnet.New(ctx, netns)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	port, err := lab.StartWorkload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peer := "127.0.0.1:" + strconv.Itoa(port)
	if err := lab.SetLoss(ctx, 20); err != nil {
		t.Fatal(err)
	}

	// Retransmits appear, labelled with the stream's peer and local port.
	sawSeries, sawEvent := false, false
	for !sawSeries || !sawEvent {
		select {
		case m := <-batches:
			b := decodeBatch(t, m)
			if n, lp := retransmitsTo(b, peer); n > 0 {
				if lp == "" {
					t.Fatalf("series for %s without local_port: %+v", peer, b.Series)
				}
				if !sawSeries {
					t.Logf("batch %d: %v retransmits to %s from local port %s (via %s)", b.Seq, n, peer, lp, attached)
				}
				sawSeries = true
			}
		case m := <-events:
			e, err := wire.DecodeEvent(m.Data)
			if err != nil {
				t.Fatalf("event: %v", err)
			}
			if e.Kind == "tcp_retransmit" && (e.Labels["peer"] == peer || e.Labels["local"] == peer) {
				if !sawEvent {
					t.Logf("event: %s %v", e.Text, e.Labels)
				}
				sawEvent = true
			}
		case <-ctx.Done():
			t.Fatalf("waiting for retransmits to %s: series seen %v, event seen %v", peer, sawSeries, sawEvent)
		}
	}

	// Without loss, retransmits to that peer stop: wait for several
	// consecutive batches (a few RTOs' worth) without an increase.
	if err := lab.ClearLoss(ctx); err != nil {
		t.Fatal(err)
	}
	const quietBatches = 10
	quiet := 0
	for quiet < quietBatches {
		select {
		case m := <-batches:
			if n, _ := retransmitsTo(decodeBatch(t, m), peer); n > 0 {
				quiet = 0
			} else {
				quiet++
			}
		case <-events:
		case <-ctx.Done():
			t.Fatalf("retransmits to %s did not stop after the loss was cleared", peer)
		}
	}
	if sent, echoed := lab.Traffic(); echoed == 0 {
		t.Fatalf("workload moved no data (sent %d)", sent)
	}
	if n := testutil.ToFloat64(c.m.batches); n == 0 {
		t.Fatal("mciv_collector_batches_published_total is 0")
	}
	if n := testutil.ToFloat64(c.m.eventsPublished); n == 0 {
		t.Fatal("mciv_collector_events_published_total is 0")
	}
	t.Logf("events published %v, suppressed %v, ring buffer drops %v",
		testutil.ToFloat64(c.m.eventsPublished), testutil.ToFloat64(c.m.eventsSuppressed), testutil.ToFloat64(c.m.ringbufDropped))
}

func decodeBatch(t *testing.T, m *nats.Msg) *wire.Batch {
	t.Helper()
	b, err := wire.DecodeBatch(m.Data)
	if err != nil {
		t.Fatalf("batch: %v", err)
	}
	up := false
	for _, s := range b.Series {
		up = up || s.Signal == "mciv_collector_up"
	}
	if !up {
		t.Fatalf("batch %d without mciv_collector_up", b.Seq)
	}
	return b
}

// retransmitsTo returns the retransmits to peer in b and a local port.
func retransmitsTo(b *wire.Batch, peer string) (n float64, localPort string) {
	for i := range b.Series {
		s := &b.Series[i]
		if s.Signal == "tcp_retransmits_total" && s.Label("peer") == peer {
			n += s.Value
			localPort = s.Label("local_port")
		}
	}
	return n, localPort
}

// eachWay runs test as two subtests on the named object only: "preferred",
// with the collector's choice of hooks (tp_btf where it can), and
// "tracepoint", with classic tracepoints only. edit selects the objects.
func eachWay(t *testing.T, objName string, test func(t *testing.T, name string, edit func([]object) []object)) {
	t.Helper()
	for _, typ := range []string{"", HookTypeTracepoint} {
		name, edit := "preferred", only(objName)
		if typ != "" {
			name = typ
			edit = func(objs []object) []object { return onlyWays(only(objName)(objs), typ) }
		}
		t.Run(name, func(t *testing.T) { test(t, name, edit) })
	}
}

// onlyWays restricts every hook of objs to the ways of attaching of type
// typ.
func onlyWays(objs []object, typ string) []object {
	out := make([]object, 0, len(objs))
	for _, o := range objs {
		hooks := o.hooks
		o.hooks = func() []hookSpec {
			var hs []hookSpec
			for _, h := range hooks() {
				var ways []attachWay
				for _, w := range h.ways {
					if w.typ == typ {
						ways = append(ways, w)
					}
				}
				h.ways = ways
				hs = append(hs, h)
			}
			return hs
		}
		out = append(out, o)
	}
	return out
}
