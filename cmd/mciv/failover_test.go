package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
)

func TestFailoverPauseResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if out, err := runCLI(ctx, "failover", "status", "--nats", srv.URL()); err != nil || !strings.Contains(out, "active") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if out, err := runCLI(ctx, "failover", "pause", "--nats", srv.URL(), "--by", "alice", "--reason", "schema migration"); err != nil || !strings.Contains(out, "paused by alice") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	if out, err := runCLI(ctx, "failover", "status", "--nats", srv.URL()); err != nil || !strings.Contains(out, "paused by alice") || !strings.Contains(out, "schema migration") {
		t.Fatalf("status after pause: %v\n%s", err, out)
	}
	if out, err := runCLI(ctx, "failover", "resume", "--nats", srv.URL(), "--by", "alice"); err != nil || !strings.Contains(out, "resumed") {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if out, err := runCLI(ctx, "failover", "status", "--nats", srv.URL()); err != nil || !strings.Contains(out, "active") {
		t.Fatalf("status after resume: %v\n%s", err, out)
	}
}
