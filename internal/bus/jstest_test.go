package bus

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// startJetStream starts an embedded server in a temporary directory and
// returns a JetStream context on it; both are closed when the test ends.
func startJetStream(ctx context.Context, t *testing.T) jetstream.JetStream {
	t.Helper()
	srv, err := StartEmbedded(ctx, EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := Connect(ctx, srv.URL(), ConnectOptions{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
