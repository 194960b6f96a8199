package analyzer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// baselineRule fires on the first batch whose retransmit rate leaves an
// EWMA baseline, once the baseline has learnt for a minute of batches.
const baselineRule = `groups:
  - name: network
    rules:
      - alert: RetransAnomaly
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: ewma, warmup: 60s, threshold: 5}
        for: 0s
`

// noisyRate is host h's retransmit increase of batch seq: about 100 with
// noise, 200 at the seqs in jump.
func noisyRate(h, seq int, jump ...int) float64 {
	rng := rand.New(rand.NewPCG(uint64(h), uint64(seq)))
	v := 100 + 2*rng.NormFloat64()
	for _, j := range jump {
		if seq == j {
			v += 100
		}
	}
	return v
}

const baselineHosts = 6

// publishRates publishes batch seq of every host, host h1 jumping at jump.
func publishRates(t *testing.T, b *testBus, seq int, jump ...int) {
	t.Helper()
	for h := range baselineHosts {
		var j []int
		if h == 1 {
			j = jump
		}
		host := fmt.Sprintf("h%d", h)
		if err := b.nc.Publish(wire.SamplesSubject("c", host), wire.EncodeBatch(hostBatch(host, seq, retrans(noisyRate(h, seq, j...))))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// fleetMember starts a fleet analyzer of set.
func fleetMember(t *testing.T, ctx context.Context, b *testBus, member string, set *rules.Set, change func(*FleetConfig)) (*Analyzer, context.CancelFunc, chan error) {
	t.Helper()
	fc := FleetConfig{Partitions: 4, Member: member, PinnedTTL: 2 * time.Second, CheckpointInterval: 300 * time.Millisecond,
		SnapshotInterval: 300 * time.Millisecond, NoRebalance: true}
	if change != nil {
		change(&fc)
	}
	return runFleetMember(t, ctx, b.srv.URL(), member, Config{Rules: set, Fleet: fc}, prometheus.NewRegistry())
}

// partitionEnds returns the last input stream sequence of each partition.
func partitionEnds(t *testing.T, ctx context.Context, b *testBus) map[int]uint64 {
	t.Helper()
	st, err := b.js.Stream(ctx, bus.InputStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int]uint64{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if p, _, err := bus.SplitPartition(m.Subject); err == nil {
			ends[p] = seq
		}
	}
	return ends
}

// snapshotSeq is the sequence of partition n's stored detector snapshot
// (0: none).
func snapshotSeq(t *testing.T, ctx context.Context, b *testBus, n int) uint64 {
	t.Helper()
	// One look, bounded as the analyzer bounds its own reads: a read that
	// meets the owner replacing the object can wait for chunks that are
	// gone, and once took the test's whole three minutes. The caller
	// polls again.
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	store, err := b.js.ObjectStore(ctx, DetectorsBucket)
	if err != nil {
		return 0
	}
	data, err := store.GetBytes(ctx, "p"+fmt.Sprint(n))
	if err != nil {
		return 0
	}
	h, _, err := splitSnapshot(data)
	if err != nil {
		t.Fatalf("partition %d: %v", n, err)
	}
	return h.Seq
}

// slowContext bounds a test that runs two fleet members one after the
// other: generously, for a loaded machine.
// firstOwner runs member an-a until it owns the four partitions and has
// evaluated 100 rounds of every host, waits until saved(n, end) holds for
// each partition n and its last input sequence end (what names it), stops
// an-a, and returns the partitions' ends.
func firstOwner(t *testing.T, ctx context.Context, b *testBus, set *rules.Set, change func(*FleetConfig), what string, saved func(n int, end uint64) bool) map[int]uint64 {
	t.Helper()
	a, stopA, doneA := fleetMember(t, ctx, b, "an-a", set, change)
	publishRates(t, b, 0)
	waitFor(t, 10*time.Second, "an-a to own the partitions", func() bool { return len(a.Owned()) == 4 })
	for seq := 1; seq < 100; seq++ {
		publishRates(t, b, seq)
	}
	ends := partitionEnds(t, ctx, b)
	waitFor(t, 40*time.Second, what, func() bool {
		for n, end := range ends {
			if !saved(n, end) {
				return false
			}
		}
		return true
	})
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	return ends
}

func slowContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// checkpointSeq is the sequence of partition n's checkpoint (0: none).
func checkpointSeq(t *testing.T, ctx context.Context, b *testBus, n int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, apiTimeout) // one look (see snapshotSeq)
	defer cancel()
	kv, err := b.js.KeyValue(ctx, CheckpointBucket)
	if err != nil {
		return 0
	}
	e, err := kv.Get(ctx, "p"+fmt.Sprint(n))
	if err != nil {
		return 0
	}
	var ck Checkpoint
	if err := json.Unmarshal(e.Value(), &ck); err != nil {
		t.Fatalf("partition %d: %v", n, err)
	}
	return ck.Seq
}

// TestFleetTakeoverKeepsBaselines: the owner of every partition learns
// the hosts' baselines and stops; the input stream is purged, so that no
// history is left to replay, and Warmup is off; the new owner fires on
// the first anomalous batch after its takeover, which only the detector
// snapshot can make it do (a fresh EWMA needs a minute of batches).
func TestFleetTakeoverKeepsBaselines(t *testing.T) {
	ctx := slowContext(t)
	b := startBus(t, ctx, true)
	set := mustRules(t, baselineRule)
	noWarmup := func(fc *FleetConfig) { fc.Warmup = -1 }
	ends := firstOwner(t, ctx, b, set, noWarmup, "detector snapshots of everything evaluated", func(n int, end uint64) bool {
		return !(snapshotSeq(t, ctx, b, n) < end)
	})
	if al, _ := stored(t, ctx, b.js); len(al) != 0 {
		t.Fatalf("%d alerts before the anomaly", len(al))
	}
	st, err := b.js.Stream(ctx, bus.InputStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	bAn, stopB, doneB := fleetMember(t, ctx, b, "an-b", set, noWarmup)
	defer func() { stopB(); <-doneB }()
	for seq := 100; seq < 106; seq++ {
		publishRates(t, b, seq, 101)
	}
	waitFor(t, 40*time.Second, "an-b to own the partitions", func() bool { return len(bAn.Owned()) == 4 })
	waitFor(t, 40*time.Second, "h1's anomaly to fire", func() bool {
		al, _ := stored(t, ctx, b.js)
		return len(al) >= 1
	})
	al, _ := stored(t, ctx, b.js)
	if al[0].Labels["host"] != "h1" || al[0].State != wire.StateFiring || !al[0].StartsAt.Equal(t0.Add(102*time.Second)) {
		t.Fatalf("first alert %s %s from %v, want h1 firing from batch 101's end", al[0].Labels["host"], al[0].State, al[0].StartsAt)
	}
	if n := testutil.ToFloat64(bAn.fm.restores.WithLabelValues(RestoredFromSnapshot)); n < float64(len(ends)) {
		t.Errorf("%v takeovers from a snapshot, want the %d partitions with hosts", n, len(ends))
	}
	if n := testutil.ToFloat64(bAn.fm.restores.WithLabelValues(RestoredFromNone)); n > float64(4-len(ends)) {
		t.Errorf("%v takeovers without baselines, want at most the %d partitions without hosts", n, 4-len(ends))
	}
}

// TestFleetCorruptSnapshotFallsBackToWarmup: a new owner that finds the
// partitions' snapshots unreadable replays the warm-up instead, and its
// baselines come from there: the anomaly still fires.
func TestFleetCorruptSnapshotFallsBackToWarmup(t *testing.T) {
	ctx := slowContext(t)
	b := startBus(t, ctx, true)
	set := mustRules(t, baselineRule)
	firstOwner(t, ctx, b, set, nil, "detector snapshots of everything evaluated", func(n int, end uint64) bool {
		return !(snapshotSeq(t, ctx, b, n) < end || checkpointSeq(t, ctx, b, n) < end)
	})
	store, err := b.js.ObjectStore(ctx, DetectorsBucket)
	if err != nil {
		t.Fatal(err)
	}
	for n := range 4 {
		name := "p" + fmt.Sprint(n)
		data, err := store.GetBytes(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)-1] ^= 0xff // the engine state's checksum
		if _, err := store.PutBytes(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	bAn, stopB, doneB := fleetMember(t, ctx, b, "an-b", set, nil)
	defer func() { stopB(); <-doneB }()
	for seq := 100; seq < 106; seq++ {
		publishRates(t, b, seq, 101)
	}
	waitFor(t, 40*time.Second, "an-b to own the partitions", func() bool { return len(bAn.Owned()) == 4 })
	waitFor(t, 40*time.Second, "h1's anomaly to fire", func() bool {
		al, _ := stored(t, ctx, b.js)
		return len(al) >= 1
	})
	if n := testutil.ToFloat64(bAn.fm.restores.WithLabelValues(RestoredFromSnapshot)); n != 0 {
		t.Errorf("%v takeovers from a corrupt snapshot", n)
	}
	if n := testutil.ToFloat64(bAn.fm.restores.WithLabelValues(RestoredFromWarmup)); n < 4 {
		t.Errorf("%v takeovers from the warm-up, want the 4", n)
	}
}

// TestFleetTakeoverWithoutSnapshotHasNoBaselines is the control of
// TestFleetTakeoverKeepsBaselines: with snapshots off, the same takeover
// does not fire on the anomaly.
func TestFleetTakeoverWithoutSnapshotHasNoBaselines(t *testing.T) {
	ctx := slowContext(t)
	b := startBus(t, ctx, true)
	set := mustRules(t, baselineRule)
	off := func(fc *FleetConfig) { fc.Warmup, fc.SnapshotInterval = -1, -1 }
	firstOwner(t, ctx, b, set, off, "checkpoints of everything evaluated", func(n int, end uint64) bool {
		return !(checkpointSeq(t, ctx, b, n) < end)
	})
	bAn, stopB, doneB := fleetMember(t, ctx, b, "an-b", set, off)
	defer func() { stopB(); <-doneB }()
	for seq := 100; seq < 106; seq++ {
		publishRates(t, b, seq, 101)
	}
	waitFor(t, 40*time.Second, "an-b to own the partitions", func() bool { return len(bAn.Owned()) == 4 })
	waitFor(t, 40*time.Second, "an-b to evaluate the last batches", func() bool {
		return testutil.ToFloat64(bAn.m.batches) >= 6*baselineHosts
	})
	if err := bAn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if al, _ := stored(t, ctx, b.js); len(al) != 0 {
		t.Fatalf("%d alerts: a takeover without a snapshot fired on the anomaly", len(al))
	}
	if n := testutil.ToFloat64(bAn.fm.restores.WithLabelValues(RestoredFromSnapshot)); n != 0 {
		t.Fatalf("%v takeovers from a snapshot with snapshots off", n)
	}
}

// restartAnalyzer runs a single process analyzer of set keeping its
// detector state in dir, until the returned stop is called.
func restartAnalyzer(t *testing.T, ctx context.Context, b *testBus, set *rules.Set, clk *clock, dir string) (*Analyzer, func()) {
	t.Helper()
	a, err := New(Config{Rules: set, Now: clk.Now, OutboxDir: dir}, b.js, prometheus.NewRegistry(), testLogger(t, "single"))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(rctx, b.nc) }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return a, func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestartKeepsBaselines: a single process analyzer stopped after its
// detectors learnt the hosts' baselines fires, once restarted, on the
// first anomalous batch; one without the state file does not.
func TestRestartKeepsBaselines(t *testing.T) {
	ctx := slowContext(t)
	b := startBus(t, ctx, true)
	set := mustRules(t, baselineRule)
	clk := &clock{}
	dir := t.TempDir()
	a, stop := restartAnalyzer(t, ctx, b, set, clk, dir)
	for seq := range 100 {
		for h := range baselineHosts {
			send(ctx, a, clk, hostBatch(fmt.Sprintf("h%d", h), seq, retrans(noisyRate(h, seq))))
		}
	}
	stop()
	path := filepath.Join(dir, DetectorsFileName)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no detector state written on the way out: %v", err)
	}

	anomaly := func(a *Analyzer) {
		for seq := 100; seq < 103; seq++ {
			for h := range baselineHosts {
				j := []int(nil)
				if h == 1 {
					j = []int{101}
				}
				send(ctx, a, clk, hostBatch(fmt.Sprintf("h%d", h), seq, retrans(noisyRate(h, seq, j...))))
			}
		}
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The control: a fresh analyzer (another state file) does not fire.
	c, stopC := restartAnalyzer(t, ctx, b, set, clk, t.TempDir())
	anomaly(c)
	stopC()
	if al, _ := stored(t, ctx, b.js); len(al) != 0 {
		t.Fatalf("%d alerts from an analyzer without baselines: the test proves nothing", len(al))
	}

	a2, stop2 := restartAnalyzer(t, ctx, b, set, clk, dir)
	defer stop2()
	if n := testutil.ToFloat64(a2.fm.stateLoads.WithLabelValues(StateLoaded)); n != 1 {
		t.Fatalf("detector state loads: %v", n)
	}
	anomaly(a2)
	al, _ := stored(t, ctx, b.js)
	if len(al) != 1 || al[0].Labels["host"] != "h1" || !al[0].StartsAt.Equal(t0.Add(102*time.Second)) {
		t.Fatalf("%d alerts after the restart, want h1 firing from batch 101's end", len(al))
	}
}

// TestDetectorsFileRejected: a corrupt or stale state file is skipped and
// counted, and the analyzer starts.
func TestDetectorsFileRejected(t *testing.T) {
	ctx := slowContext(t)
	b := startBus(t, ctx, true)
	set := mustRules(t, baselineRule)
	clk := &clock{}
	clk.Set(t0)
	dir := t.TempDir()
	a, stop := restartAnalyzer(t, ctx, b, set, clk, dir)
	send(ctx, a, clk, hostBatch("h0", 0, retrans(1)))
	stop()
	path := filepath.Join(dir, DetectorsFileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)-3] ^= 0xff
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	a, stop = restartAnalyzer(t, ctx, b, set, clk, dir)
	if n := testutil.ToFloat64(a.fm.stateLoads.WithLabelValues(StateCorrupt)); n != 1 {
		t.Fatalf("corrupt loads: %v", n)
	}
	stop() // (writes a good file again)
	clk.Set(clk.Now().Add(maxBaseline(set) + time.Minute))
	a, stop = restartAnalyzer(t, ctx, b, set, clk, dir)
	defer stop()
	if n := testutil.ToFloat64(a.fm.stateLoads.WithLabelValues(StateStale)); n != 1 {
		t.Fatalf("stale loads: %v", n)
	}
}

func TestSnapshotHeader(t *testing.T) {
	h := snapHeader{Seq: 42, SeqTime: t0, SavedAt: t0.Add(time.Second)}
	b := appendSnapHeader(nil, h)
	b = append(b, "state"...)
	got, rest, err := splitSnapshot(b)
	if err != nil || got != h || string(rest) != "state" {
		t.Fatalf("got %+v %q %v", got, rest, err)
	}
	for i := range snapHeadLen {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		if _, _, err := splitSnapshot(c); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	if _, _, err := splitSnapshot(b[:snapHeadLen-1]); err == nil {
		t.Fatal("truncated header accepted")
	}
}
