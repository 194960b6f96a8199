package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/lab/tlslab"
	"github.com/mciv/mciv/internal/tlsconf"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// TestTLSEndToEnd runs `mciv up`'s embedded server with TLS and client
// verification (nats.server_tls), its analyzer and notifier connecting
// with a client certificate (nats.tls); a collector's samples sent over
// TLS with a client certificate fire a rule that reaches the console. A
// client that does not speak TLS, one that does not trust the CA, one
// without a client certificate and one whose certificate another CA
// signed are all refused.
func TestTLSEndToEnd(t *testing.T) {
	dir := t.TempDir()
	certs, err := tlslab.Write(dir, "mciv")
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := tlslab.Write(dir, "rogue")
	if err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(`groups:
  - name: lab
    rules:
      - alert: LabRetransmits
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 1}
        labels: {severity: warning}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Cluster, cfg.Host = labCluster, "core-1"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.NATS.ServerTLS = tlsconf.Config{CAFile: certs.CA, CertFile: certs.ServerCert, KeyFile: certs.ServerKey, VerifyClients: true}
	cfg.NATS.TLS = tlsconf.Config{CAFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
	cfg.Metrics.Listen = ""
	cfg.Analyzer.Rules = []string{rulesPath}
	off := false
	cfg.Collector.Enabled = &off
	cfg.Voice.Enabled = &off
	console := &testenv.LockedBuffer{}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Parts: Parts{Analyzer: true, Notifier: true}, Registry: prometheus.NewRegistry(),
			Logger:  slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Console: console, Ready: func(i Info) { ready <- i }})
	}()
	var url string
	select {
	case info := <-ready:
		url = info.NATSURL
	case err := <-done:
		t.Fatalf("Run ended before it was ready: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()

	// A collector over TLS, with its client certificate.
	tc, err := cfg.NATS.TLS.Client()
	if err != nil {
		t.Fatal(err)
	}
	col, err := bus.Connect(ctx, url, bus.ConnectOptions{Name: "tls-collector", Secure: bus.Secure{TLS: tc}})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	if st, err := col.TLSConnectionState(); err != nil || !st.HandshakeComplete {
		t.Fatalf("the collector's connection is not TLS: %v", err)
	}
	for seq := uint64(1); ; seq++ {
		if err := col.Publish(wire.SamplesSubject(labCluster, "db-1"), batch("db-1", seq, 50)); err != nil {
			t.Fatal(err)
		}
		_ = col.Flush()
		if strings.Contains(console.String(), "db-1") {
			break
		}
		if seq > 150 {
			t.Fatalf("no alert on the console after %d batches over TLS; console: %q", seq, console.String())
		}
		time.Sleep(200 * time.Millisecond) // pacing the collector's interval, not a timing assertion
	}

	refused := func(name string, opts ...nats.Option) {
		t.Helper()
		opts = append(opts, nats.Timeout(5*time.Second), nats.MaxReconnects(0), nats.NoReconnect())
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			// A refused client certificate (TLS 1.3) shows after the handshake.
			err = nc.FlushTimeout(5 * time.Second)
			nc.Close()
		}
		if err == nil {
			t.Errorf("%s: connected", name)
		} else {
			t.Logf("%s: refused: %v", name, err)
		}
	}
	refused("no TLS")
	noCA, err := tlsconf.Config{CertFile: certs.ClientCert, KeyFile: certs.ClientKey}.Client()
	if err != nil {
		t.Fatal(err)
	}
	refused("without the CA", nats.Secure(noCA))
	noCert, err := tlsconf.Config{CAFile: certs.CA}.Client()
	if err != nil {
		t.Fatal(err)
	}
	refused("without a client certificate", nats.Secure(noCert))
	otherCA, err := tlsconf.Config{CAFile: certs.CA, CertFile: rogue.ClientCert, KeyFile: rogue.ClientKey}.Client()
	if err != nil {
		t.Fatal(err)
	}
	refused("with a client certificate of another CA", nats.Secure(otherCA))
}
