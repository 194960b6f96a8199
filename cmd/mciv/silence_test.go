package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/storelab"
	"github.com/mciv/mciv/internal/lab/tlslab"
	"github.com/mciv/mciv/internal/tlsconf"
	"github.com/mciv/mciv/notifier/silence"
)

func TestSilenceAddListExpire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	out, err := runCLI(ctx, "silence", "add", "--nats", srv.URL(), "--matcher", "host=db-1", "--matcher", `severity=~"warn.*"`, "--duration", "1h", "--comment", "kernel upgrade")
	if err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	id := strings.TrimSpace(out)
	if id == "" {
		t.Fatal("add printed no id")
	}
	out, err = runCLI(ctx, "silence", "list", "--nats", srv.URL())
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, `host="db-1"`) || !strings.Contains(out, "active") || !strings.Contains(out, "kernel upgrade") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := runCLI(ctx, "silence", "expire", "--nats", srv.URL(), id); err != nil {
		t.Fatalf("expire: %v\n%s", err, out)
	}
	out, err = runCLI(ctx, "silence", "list", "--nats", srv.URL())
	if err != nil || strings.Contains(out, id) {
		t.Fatalf("list after expire shows it: %v\n%s", err, out)
	}
	out, err = runCLI(ctx, "silence", "list", "--all", "--json", "--nats", srv.URL())
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("list --all: %v\n%s", err, out)
	}
	if _, err := runCLI(ctx, "silence", "add", "--nats", srv.URL(), "--matcher", "host~x"); err == nil {
		t.Error("a bad matcher was accepted")
	}
}

// TestSilenceAddOnAFullStore: with the silences bucket full, `mciv silence
// add` fails with an error that says the store is full and names the
// bucket; list still works.
func TestSilenceAddOnAFullStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if out, err := runCLI(ctx, "silence", "list", "--nats", srv.URL()); err != nil { // creates the bucket
		t.Fatalf("list: %v\n%s", err, out)
	}
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storelab.Fill(ctx, js, silence.Bucket); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(ctx, "silence", "add", "--nats", srv.URL(), "--matcher", "host=db-1", "--duration", "1h")
	if err == nil {
		t.Fatalf("add on a full store succeeded: %s", out)
	}
	if msg := err.Error(); !strings.Contains(msg, "bucket "+silence.Bucket+" is full") {
		t.Errorf("the error does not say which bucket is full: %q", msg)
	}
	if out, err := runCLI(ctx, "silence", "list", "--nats", srv.URL()); err != nil {
		t.Errorf("list on a full store: %v\n%s", err, out)
	}
}

// TestCLIOverTLS: the CLI reaches an embedded server that requires TLS
// and client certificates with --tls-ca, --tls-cert and --tls-key, and
// without the CA it fails at once with an error that says TLS was refused.
func TestCLIOverTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	certs, err := tlslab.Write(t.TempDir(), "cli")
	if err != nil {
		t.Fatal(err)
	}
	stc, err := tlsconf.Config{CAFile: certs.CA, CertFile: certs.ServerCert, KeyFile: certs.ServerKey, VerifyClients: true}.Server()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		EmbeddedSecure: bus.EmbeddedSecure{TLS: stc}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	tlsArgs := []string{"--nats", srv.URL(), "--tls-ca", certs.CA, "--tls-cert", certs.ClientCert, "--tls-key", certs.ClientKey}
	out, err := runCLI(ctx, append([]string{"silence", "add", "--matcher", "host=db-1", "--duration", "1h"}, tlsArgs...)...)
	if err != nil {
		t.Fatalf("add over TLS: %v\n%s", err, out)
	}
	id := strings.TrimSpace(out)
	if out, err := runCLI(ctx, append([]string{"silence", "list"}, tlsArgs...)...); err != nil || !strings.Contains(out, id) {
		t.Fatalf("list over TLS: %v\n%s", err, out)
	}
	start := time.Now()
	_, err = runCLI(ctx, "silence", "list", "--nats", srv.URL(), "--tls-cert", certs.ClientCert, "--tls-key", certs.ClientKey)
	if err == nil || !strings.Contains(err.Error(), "TLS refused") {
		t.Fatalf("list without the CA: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the refused connection was retried until the deadline (%s)", time.Since(start))
	}
}
