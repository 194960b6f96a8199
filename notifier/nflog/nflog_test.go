package nflog

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

func startJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	ctx := context.Background()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "nflog-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestCreateIsExclusiveAndUpdateIsCAS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, startJS(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{GroupKey: "r.abc", Alerts: map[string]*wire.Alert{}}
	rev, err := l.Put(ctx, e, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, e, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	if _, err := l.Put(ctx, e, rev); err != nil {
		t.Fatalf("update at the right revision: %v", err)
	}
	if _, err := l.Put(ctx, e, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("update at a stale revision: %v, want ErrConflict", err)
	}
}

func TestModifyConcurrentlyLosesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, startJS(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var created atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, _, err := l.Modify(ctx, "r.k", func(e *Entry) (*Entry, error) {
				if e == nil {
					created.Add(1)
					e = &Entry{Alerts: map[string]*wire.Alert{}}
				}
				fp := string(rune('a' + i))
				e.Alerts[fp] = &wire.Alert{Fingerprint: fp, State: wire.StateFiring}
				return e, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	e, _, err := l.Get(ctx, "r.k")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Alerts) != n {
		t.Errorf("entry has %d alerts, want %d", len(e.Alerts), n)
	}
	before := e.StateHash()
	e.Alerts["a"].State = wire.StateResolved
	if e.StateHash() == before {
		t.Error("state hash did not change with a state")
	}
	all, err := l.Entries(ctx)
	if err != nil || len(all) != 1 {
		t.Errorf("Entries = %d, %v", len(all), err)
	}
}

func TestIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, startJS(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a.1", "b.2", "a.1"} {
		if err := l.Index(ctx, "fp/with:odd chars", k); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := l.Groups(ctx, "fp/with:odd chars")
	if err != nil || len(keys) != 2 {
		t.Errorf("Groups = %v, %v", keys, err)
	}
}
