package escalation

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/bus"
)

// startJetStream runs an embedded nats-server with the mciv streams.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	ctx := t.Context()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "escalation-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return js
}

func TestKey(t *testing.T) {
	if k := Key("a1b2c3"); k != "a1b2c3" {
		t.Errorf("Key = %s", k)
	}
	k := Key("has spaces.and.dots*")
	if !strings.HasPrefix(k, "h-") || len(k) != 34 || Key("has spaces.and.dots*") != k {
		t.Errorf("Key = %s", k)
	}
}

func TestMemoryStoreCopies(t *testing.T) {
	s := NewMemoryStore()
	st := &State{Fingerprint: "fp", Calls: []Call{{Person: "a"}}}
	if err := s.Put(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	st.Calls[0].Person = "changed"
	got, err := s.Load(t.Context())
	if err != nil || len(got) != 1 || got[0].Calls[0].Person != "a" {
		t.Fatalf("Load = %+v, %v", got, err)
	}
}

// TestRestartContinues stores escalations in JetStream KV: a new engine
// (a restarted notifier) continues with the secondary instead of calling
// the primary again.
func TestRestartContinues(t *testing.T) {
	js := startJetStream(t)
	store, err := NewKVStore(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	first := newEnv(t, exampleConfig(t), nil, store, nil)
	if err := first.eng.Notify(t.Context(), firing("fp1")); err != nil {
		t.Fatal(err)
	}
	first.at(5 * time.Minute)
	first.wantCalled("before the restart", alice)

	// Restart: a new engine, the same bucket (reopened) and Twilio.
	store2, err := NewKVStore(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	second := newEnv(t, exampleConfig(t), first.fake, store2, first.clock)
	st, ok := second.eng.Escalation("fp1")
	if !ok || st.Next != 1 || len(st.Calls) != 1 || st.Calls[0].Person != "alice" || !st.Started.Equal(t0) {
		t.Fatalf("loaded %+v, %v", st, ok)
	}
	// The callback of the call placed before the restart is understood.
	if r, err := second.fake.SendStatus(t.Context(), second.fake.Calls()[0], "no-answer"); err != nil || r.Status != 204 {
		t.Fatalf("status after restart: %+v %v", r, err)
	}
	second.at(10 * time.Minute)
	second.wantCalled("after the restart, before the second step", alice)
	second.at(15 * time.Minute)
	second.wantCalled("after the restart", alice, bob)
	if err := second.eng.Notify(t.Context(), firing("fp1")); err != nil { // redelivered after the restart
		t.Fatal(err)
	}
	second.wantCalled("redelivery after the restart", alice, bob)
}

func waitStopped(t *testing.T, e *Engine, fp string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := e.Escalation(fp); st.Stopped {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling for an asynchronous consumer, not timing
	}
	t.Fatalf("escalation %s did not stop", fp)
}
