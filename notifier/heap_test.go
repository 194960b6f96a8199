package notifier_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/nats-io/nats.go/jetstream"
)

// stuck is an integration whose destination is down: every delivery fails.
type stuck struct{ calls atomic.Int64 }

func (*stuck) Name() string { return "stuck" }

func (s *stuck) Notify(ctx context.Context, a *wire.Alert) error {
	s.calls.Add(1)
	return errors.New("destination down")
}

// heapGrowth publishes n alerts (each with a 2 KiB description) to a
// fresh stream, then runs a dispatcher whose only integration is stuck
// until it has tried 3 × maxPending deliveries, and returns how much the
// heap grew while the dispatcher ran (the stream's own memory is in the
// baseline).
func heapGrowth(t *testing.T, n, maxPending int) int64 {
	// Publishing tens of thousands of alerts under -race on a shared
	// machine takes a while: a longer bound than testCtx.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	env := startNATS(t, ctx, t.TempDir())
	desc := strings.Repeat("x", 2048)
	for i := range n {
		a := alert("RuleA", fmt.Sprintf("db-%05d", i))
		a.Annotations = map[string]string{"description": desc}
		data, err := wire.EncodeAlert(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.js.PublishAsync(wire.AlertSubject("default", a.Rule), data, jetstream.WithMsgID(a.MsgID())); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-env.js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatalf("publishing %d alerts: %v", n, ctx.Err())
	}
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	// Load the block the lane reads into the server's cache first: the
	// server's buffer for it (8 or 16 MiB, pooled) is then in the baseline.
	st, err := env.js.Stream(ctx, bus.AlertsStream)
	if err != nil {
		t.Fatal(err)
	}
	// The stream keeps its newest MaxBytes (64 MiB): at large n the first
	// alerts are gone, and the lane starts at the first one stored.
	si, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetMsg(ctx, si.State.FirstSeq); err != nil {
		t.Fatal(err)
	}
	before := heap()
	s := &stuck{}
	cfg := notifier.DispatcherConfig{RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, MaxPending: maxPending, DepthInterval: time.Hour}
	r := start(t, ctx, env.js, cfg, s)
	if err := eventually(ctx, func() bool { return s.calls.Load() >= int64(3*maxPending) }); err != nil {
		t.Fatalf("the stuck lane tried %d deliveries, want %d", s.calls.Load(), 3*maxPending)
	}
	grew := heap() - before
	r.stop()
	return grew
}

// TestStuckIntegrationHeapBounded floods one stuck integration with N ≫
// MaxPending alerts: what the dispatcher holds is bounded by MaxPending,
// not by N. Run with -v for the figures (heap growth for each N, side by
// side in one run).
func TestStuckIntegrationHeapBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 40000 alerts (-short)")
	}
	const maxPending = 100
	small, large := 8000, 32000
	gSmall := heapGrowth(t, small, maxPending)
	gLarge := heapGrowth(t, large, maxPending)
	t.Logf("MaxPending %d: heap growth %d KiB with N=%d, %d KiB with N=%d (each alert ~2.3 KiB; holding all of them would be ~%d KiB and ~%d KiB)",
		maxPending, gSmall>>10, small, gLarge>>10, large, small*23/10, large*23/10)
	// Holding the alerts would grow the heap by ~55 MiB more at N=32000
	// than at N=8000; bounded by MaxPending it grows by about as much.
	// The embedded server may still take a pooled buffer for a message
	// block (8 or 16 MiB) in either run: that much is allowed, plus 4 MiB.
	if extra := gLarge - gSmall; extra > 20<<20 {
		t.Errorf("heap grew %d KiB more with N=%d than with N=%d: what the stuck lane holds grows with N", extra>>10, large, small)
	}
}
