package analyzer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/fleetlab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

const fleetRules = tcpRule + `  - name: hosts
    rules:
      - alert: CollectorDown
        signal: mciv_collector_up
        stat: max
        by: [cluster, host]
        detector: {type: absence, for: 3s}
        labels: {severity: critical}
`

// TestFleetOnCluster runs two analyzers on a three-node cluster of real
// nats-server processes, with a publisher of twelve simulated hosts on
// JetStream; it SIGKILLs the node that leads the input stream, then stops
// the active analyzer. Every alert transition is stored exactly once, no
// CollectorDown fires, and the counted gaps are the dropped batches.
// MCIV_FLEET_LAB=0 skips it.
func TestFleetOnCluster(t *testing.T) {
	if os.Getenv("MCIV_FLEET_LAB") == "0" || testing.Short() {
		t.Skip("MCIV_FLEET_LAB=0 or -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := fleetlab.Start(ctx, t, 3)
	connect := func(name string) (jetstream.JetStream, func()) {
		nc, err := bus.Connect(ctx, cl.URLs(), bus.ConnectOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := bus.JetStream(nc)
		return js, nc.Close
	}
	pjs, pclose := connect("publisher")
	defer pclose()
	// The cluster needs a moment to elect its meta leader.
	var lastErr error
	waitFor(t, 60*time.Second, "streams created", func() bool {
		sctx, sc := context.WithTimeout(ctx, 5*time.Second)
		defer sc()
		lastErr = bus.EnsureStreams(sctx, pjs, bus.StreamOptions{Replicas: 3})
		if lastErr != nil {
			t.Log(lastErr)
		}
		return lastErr == nil
	})
	const interval = 200 * time.Millisecond
	start := func(member string) (*Analyzer, context.CancelFunc, chan error) {
		return runFleetMember(t, ctx, cl.URLs(), member, Config{Rules: mustRules(t, fleetRules), Fleet: FleetConfig{
			Partitions: 4, Member: member, Replicas: 3, PinnedTTL: 2 * time.Second,
			CheckpointInterval: 500 * time.Millisecond, AbsenceGrace: 5 * time.Second,
		}}, prometheus.NewRegistry())
	}
	aA, stopA, doneA := start("an-a")
	var seqNow atomic.Int64
	dropped := map[int]bool{110: true, 111: true} // h5's lost batches
	// The hosts publish until the test ends: hosts that stopped would
	// rightly be absent.
	pubCtx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan error, 1)
	defer func() { stopPub(); <-pubDone }()
	go func() {
		lastPubErr := ""
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for seq := 0; pubCtx.Err() == nil; seq++ {
			seqNow.Store(int64(seq))
			for h := range 12 {
				host := fmt.Sprintf("h%d", h)
				if host == "h5" && dropped[seq] {
					continue
				}
				v := 0.0
				if host == "h3" && seq >= 10 && seq < 90 {
					v = 10 * interval.Seconds()
				}
				b := &wire.Batch{Cluster: "c", Host: host, Seq: uint64(seq), Start: time.Now().Add(-interval), Interval: interval,
					Series: []wire.Series{retrans(v), {Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}}}
				data := wire.EncodeBatch(b)
				id := fmt.Sprintf("c.%s.%d", host, seq)
				for {
					pctx, pc := context.WithTimeout(pubCtx, 2*time.Second)
					_, err := pjs.Publish(pctx, wire.SamplesSubject("c", host), data, jetstream.WithMsgID(id))
					pc()
					if err == nil {
						break
					}
					if pubCtx.Err() != nil {
						pubDone <- nil
						return
					}
					if msg := err.Error(); msg != lastPubErr {
						t.Logf("publishing batch %d of %s: %v (retrying)", seq, host, err)
						lastPubErr = msg
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			<-tk.C
		}
		pubDone <- nil
	}()
	waitFor(t, 30*time.Second, "an-a to own the partitions", func() bool { return len(aA.Owned()) == 4 })
	aB, stopB, doneB := start("an-b")
	defer func() { stopB(); <-doneB }()

	waitFor(t, 60*time.Second, "seq 40", func() bool { return seqNow.Load() >= 40 })
	info, err := pjs.Stream(ctx, bus.InputStream)
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(ctx)
	if err != nil || si.Cluster == nil {
		t.Fatalf("input stream info: %v", err)
	}
	leader := cl.Index(si.Cluster.Leader)
	t.Logf("SIGKILL of %s, the input stream's leader, at seq %d", si.Cluster.Leader, seqNow.Load())
	killed := time.Now()
	cl.Kill(leader)
	waitFor(t, 60*time.Second, "seq 70", func() bool { return seqNow.Load() >= 70 })
	t.Logf("publisher resumed; stopping the active analyzer an-a at seq %d (%.1fs after the kill)", seqNow.Load(), time.Since(killed).Seconds())
	if err := cl.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	t.Logf("an-a stopped at seq %d", seqNow.Load())
	stopped := time.Now()
	func() {
		defer func() {
			if t.Failed() {
				t.Logf("an-b owns %v", aB.Owned())
				logConsumers(t, ctx, pjs, 4)
				if dir := os.Getenv("MCIV_LAB_LOGDIR"); dir != "" {
					if f, err := os.Create(filepath.Join(dir, "goroutines.txt")); err == nil {
						_ = pprof.Lookup("goroutine").WriteTo(f, 2)
						_ = f.Close()
					}
				}
			}
		}()
		waitFor(t, 60*time.Second, "an-b to own the partitions", func() bool { return len(aB.Owned()) == 4 })
	}()
	t.Logf("an-b owns every partition %.1fs after an-a stopped", time.Since(stopped).Seconds())
	waitFor(t, 60*time.Second, "seq 120", func() bool { return seqNow.Load() >= 120 })
	waitFor(t, 60*time.Second, "h3 resolved", func() bool {
		al, _ := stored(t, ctx, pjs)
		return len(al) >= 2
	})
	// The fleet counts each dropped batch once, whoever saw the gap: an-a
	// runs on while the killed node restarts, which under load can take
	// past seq 110, and then an-a counts h5's gap at its checkpoint and
	// an-b, replaying from that checkpoint, rightly does not (the test
	// once waited for an-b's count alone and failed so, 1 run in 17).
	missed := func(h string) float64 {
		return testutil.ToFloat64(aA.fm.missed.WithLabelValues("c", h)) + testutil.ToFloat64(aB.fm.missed.WithLabelValues("c", h))
	}
	waitFor(t, 30*time.Second, "h5's gap counted", func() bool { return missed("h5") == 2 })
	t.Logf("h5's gap counted by an-a %v, an-b %v", testutil.ToFloat64(aA.fm.missed.WithLabelValues("c", "h5")), testutil.ToFloat64(aB.fm.missed.WithLabelValues("c", "h5")))
	al, _ := stored(t, ctx, pjs)
	for _, x := range al {
		t.Logf("stored: %s %s %s", x.Labels["alertname"], x.Labels["host"], x.State)
	}
	if len(al) != 2 || al[0].State != wire.StateFiring || al[1].State != wire.StateResolved || al[0].Labels["host"] != "h3" {
		t.Fatalf("%d alerts stored, want h3 firing then resolved", len(al))
	}
	var total float64
	for h := range 12 {
		total += missed(fmt.Sprintf("h%d", h))
	}
	if total != 2 {
		t.Errorf("the analyzers counted %v missed batches, want the 2 dropped", total)
	}
}

// testLogger logs name's records at debug level to $MCIV_LAB_LOGDIR/name.log
// when that is set; otherwise it keeps those at info level and above and
// prints them if the test fails.
func testLogger(t *testing.T, name string) *slog.Logger {
	t.Helper()
	if dir := os.Getenv("MCIV_LAB_LOGDIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	lb := &testenv.LockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(strings.TrimSpace(lb.String()), "\n") {
				t.Logf("%s: %s", name, l)
			}
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// logConsumers logs the state of the partition consumers: who leads
// each, who is pinned, what waits.
func logConsumers(t *testing.T, ctx context.Context, js jetstream.JetStream, partitions int) {
	t.Helper()
	for n := range partitions {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := js.Consumer(ictx, bus.InputStream, PartitionDurablePrefix+fmt.Sprint(n))
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = c.Info(ictx)
		}
		cancel()
		if err != nil {
			t.Logf("partition %d: %v", n, err)
			continue
		}
		leader := ""
		if info.Cluster != nil {
			leader = info.Cluster.Leader
		}
		t.Logf("partition %d: leader %s, pending %d, ack pending %d, waiting %d, delivered %d, ack floor %d, groups %+v",
			n, leader, info.NumPending, info.NumAckPending, info.NumWaiting, info.Delivered.Stream, info.AckFloor.Stream, info.PriorityGroups)
	}
}
