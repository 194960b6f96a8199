package bus

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestEnsureStreamUpdatesOnlyWhatChanged: every part calls EnsureStreams
// and EnsureInputStream at start; on streams that already match nothing
// is updated (an update races with consumer creation in nats-server), and
// a changed limit is applied.
func TestEnsureStreamUpdatesOnlyWhatChanged(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	js := startJetStream(ctx, t)
	var updates atomic.Int32
	sub, err := js.Conn().Subscribe("$JS.EVENT.ADVISORY.STREAM.UPDATED.>", func(*nats.Msg) { updates.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	input := InputOptions{Partitions: 4, Replicas: 1, MaxAge: time.Hour}
	for range 3 {
		if err := EnsureStreams(ctx, js, StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := EnsureInputStream(ctx, js, input); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // advisories are asynchronous
	if n := updates.Load(); n != 0 {
		t.Fatalf("%d stream updates on streams that already matched", n)
	}
	// A changed limit is an update, and it takes.
	if err := EnsureStreams(ctx, js, StreamOptions{MaxBytes: map[string]int64{AcksStream: 8 << 20}}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, AcksStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxBytes; got != 8<<20 {
		t.Fatalf("acks stream max bytes %d after the change, want %d", got, 8<<20)
	}
	deadline := time.Now().Add(5 * time.Second)
	for updates.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := updates.Load(); n != 1 {
		t.Fatalf("%d stream updates for one changed limit, want 1", n)
	}
}
