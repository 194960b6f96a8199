package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/internal/bus"
	"github.com/prometheus/client_golang/prometheus"
)

func getHealth(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestReadyzFollowsNATS: split analyzer and notifier against a NATS URL
// where nothing listens yet: /healthz answers 200 at once, /readyz 503
// naming the startup step it waits on; once a NATS server comes up there,
// /readyz answers 200 with every part's check passed.
func TestReadyzFollowsNATS(t *testing.T) {
	natsAddr, metrics := freeAddr(t), freeAddr(t)
	cfg := config.Default()
	cfg.Cluster, cfg.Host = "health", "health-host"
	cfg.DataDir = t.TempDir()
	cfg.NATS.URL = "nats://" + natsAddr
	cfg.Metrics.Listen = metrics
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Parts: Parts{Analyzer: true, Notifier: true}, Registry: prometheus.NewRegistry()})
	}()
	base := "http://" + metrics
	wait := func(path string, want int, contains string) string {
		t.Helper()
		var code int
		var body string
		ok := waitFor(ctx, func() bool {
			c, b, err := getHealth(base + path)
			code, body = c, b
			return err == nil && c == want && strings.Contains(b, contains)
		})
		if !ok {
			t.Fatalf("%s: %d %q, want %d with %q", path, code, body, want, contains)
		}
		return body
	}
	wait("/healthz", http.StatusOK, "ok")
	body := wait("/readyz", http.StatusServiceUnavailable, "[-]startup failed: notifier: connecting to NATS")
	t.Logf("before NATS: %s", body)

	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: natsAddr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	wait("/readyz", http.StatusOK, "ok")
	body = wait("/readyz?verbose", http.StatusOK, "readyz check passed")
	for _, c := range []string{"startup", "nats-notifier", "nats-analyzer", "notifier", "analyzer", "analyzer-rules"} {
		if !strings.Contains(body, "[+]"+c+" ok") {
			t.Errorf("/readyz?verbose lacks check %s:\n%s", c, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
