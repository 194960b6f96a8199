package httpserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func healthServer(t *testing.T, h *Health) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestHealthReadyFollowsChecks(t *testing.T) {
	h := NewHealth(0)
	var connected atomic.Bool
	h.AddReadiness("nats", func(context.Context) error {
		if !connected.Load() {
			return errors.New("not connected to nats://127.0.0.1:4222")
		}
		return nil
	})
	h.AddReadiness("rules", func(context.Context) error { return nil })
	srv := healthServer(t, h)

	code, body := get(t, srv, "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before NATS: %d %q, want 503", code, body)
	}
	if !strings.Contains(body, "[-]nats failed: not connected") || strings.Contains(body, "rules") {
		t.Errorf("/readyz body %q: want the failed check named, the passed one left out", body)
	}
	// Liveness is not readiness: the process is alive.
	for _, p := range []string{"/healthz", "/livez"} {
		if code, body := get(t, srv, p); code != http.StatusOK || body != "ok\n" {
			t.Errorf("%s: %d %q, want 200 ok", p, code, body)
		}
	}

	connected.Store(true)
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz after NATS: %d %q, want 200 ok", code, body)
	}
	code, body = get(t, srv, "/readyz?verbose")
	if code != http.StatusOK || !strings.Contains(body, "[+]nats ok") || !strings.Contains(body, "[+]rules ok") {
		t.Errorf("/readyz?verbose: %d %q", code, body)
	}
}

func TestHealthOneCheck(t *testing.T) {
	h := NewHealth(0)
	h.AddReadiness("good", func(context.Context) error { return nil })
	h.AddReadiness("bad", func(context.Context) error { return errors.New("broken") })
	srv := healthServer(t, h)
	if code, _ := get(t, srv, "/readyz/good"); code != http.StatusOK {
		t.Errorf("/readyz/good: %d", code)
	}
	if code, body := get(t, srv, "/readyz/bad"); code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]bad failed: broken") {
		t.Errorf("/readyz/bad: %d %q", code, body)
	}
	if code, _ := get(t, srv, "/readyz/none"); code != http.StatusNotFound {
		t.Errorf("/readyz/none: %d, want 404", code)
	}
	if code, body := get(t, srv, "/readyz"); code != http.StatusServiceUnavailable || strings.Contains(body, "good") {
		t.Errorf("/readyz: %d %q", code, body)
	}
}

func TestHealthLivenessAndReplace(t *testing.T) {
	h := NewHealth(0)
	h.AddLiveness("loop", func(context.Context) error { return errors.New("stuck") })
	srv := healthServer(t, h)
	if code, body := get(t, srv, "/livez"); code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]loop failed: stuck") {
		t.Errorf("/livez: %d %q", code, body)
	}
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a failing liveness check: %d, want 200 (the process answers)", code)
	}
	h.AddLiveness("loop", func(context.Context) error { return nil })
	if code, _ := get(t, srv, "/livez"); code != http.StatusOK {
		t.Errorf("/livez after the check was replaced: %d", code)
	}
	if n := len(h.Live(context.Background())); n != 1 {
		t.Errorf("%d liveness checks after replacing one, want 1", n)
	}
}

func TestHealthCheckTimeoutAndPanic(t *testing.T) {
	h := NewHealth(50 * time.Millisecond)
	release := make(chan struct{})
	defer close(release)
	h.AddReadiness("slow", func(context.Context) error {
		<-release // ignores ctx on purpose: a check that hangs
		return nil
	})
	h.AddReadiness("panics", func(context.Context) error { panic("boom") })
	res := h.Ready(context.Background())
	if len(res) != 2 || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "did not answer") {
		t.Fatalf("slow check: %+v", res)
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "panicked: boom") {
		t.Errorf("panicking check: %+v", res[1])
	}
}
