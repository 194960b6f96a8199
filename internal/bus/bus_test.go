package bus

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEmbeddedDedupAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	srv, err := StartEmbedded(ctx, EmbeddedOptions{DataDir: dir, Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := Connect(ctx, srv.URL(), ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := JetStream(nc)
	if err := EnsureStreams(ctx, js, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	subj := wire.AlertSubject("c", "R")
	for i := 0; i < 3; i++ {
		if _, err := js.Publish(ctx, subj, []byte("x"), jetstream.WithMsgID("same")); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	srv.Shutdown()

	// Restart on the same directory: the one stored message is still there.
	srv, err = StartEmbedded(ctx, EmbeddedOptions{DataDir: dir, Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err = Connect(ctx, srv.URL(), ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = JetStream(nc)
	st, err := js.Stream(ctx, AlertsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages after 3 publications with one id and a restart, want 1", info.State.Msgs)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://user:secret@host:4222":   "nats://***@host:4222",
		"nats://host:4222":               "nats://host:4222",
		"tls://a@b/c@d":                  "tls://***@b/c@d",
		"nats://u:p@a:1, nats://u:p@b:2": "nats://***@a:1,nats://***@b:2",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConnectGivesUpWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := Connect(ctx, "nats://user:pw@127.0.0.1:1", ConnectOptions{})
	if err == nil {
		t.Fatal("connected to nothing")
	}
	if got := err.Error(); strings.Contains(got, "pw") {
		t.Fatalf("error leaks the password: %s", got)
	}
}
