package app

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/internal/bus"
)

func TestCollectorPublisher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var started []string
	start := func(name string, _ func(context.Context) error) { started = append(started, name) }
	cfg := config.Default()
	pub, err := collectorPublisher(ctx, cfg, nc, nil, nil, start)
	if _, ok := pub.(*nats.Conn); err != nil || !ok {
		t.Fatalf("embedded: %T %v", pub, err)
	}
	cfg.NATS.URL = srv.URL()
	pub, err = collectorPublisher(ctx, cfg, nc, nil, slog.New(slog.DiscardHandler), start)
	if _, ok := pub.(*nats.Conn); err != nil || !ok {
		t.Fatalf("no input stream: %T %v", pub, err)
	}
	js, _ := bus.JetStream(nc)
	if _, err := bus.EnsureInputStream(ctx, js, bus.InputOptions{}); err != nil {
		t.Fatal(err)
	}
	pub, err = collectorPublisher(ctx, cfg, nc, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), start)
	if _, ok := pub.(*collector.StreamPublisher); err != nil || !ok || len(started) != 1 {
		t.Fatalf("input stream: %T %v, started %v", pub, err, started)
	}
}
