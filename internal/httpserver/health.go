package httpserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Health endpoints, shaped like the Kubernetes API server's:
//
//   - /healthz answers 200 while the process serves HTTP at all;
//   - /livez runs the liveness checks (a part that is wedged for good);
//   - /readyz runs the readiness checks (connected to NATS, streams and
//     consumers set up, rules loaded).
//
// A failing endpoint answers 503 and names every failed check with its
// error; ?verbose lists every check, passed or not. /livez/<name> and
// /readyz/<name> run one check.
const (
	PathHealthz = "/healthz"
	PathLivez   = "/livez"
	PathReadyz  = "/readyz"
)

// Check reports whether one condition holds; a nil error means it does.
// It must return promptly once ctx ends.
type Check func(ctx context.Context) error

// DefaultCheckTimeout bounds one check.
const DefaultCheckTimeout = 2 * time.Second

// Health is a registry of named liveness and readiness checks and the
// handlers that run them. The zero value is not usable: use NewHealth.
type Health struct {
	timeout time.Duration

	mu    sync.RWMutex
	live  []namedCheck
	ready []namedCheck
}

type namedCheck struct {
	name  string
	check Check
}

// NewHealth returns an empty registry whose checks each get timeout (0:
// DefaultCheckTimeout).
func NewHealth(timeout time.Duration) *Health {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	return &Health{timeout: timeout}
}

// AddReadiness adds a readiness check; a name already registered is
// replaced, so a part that restarts registers again.
func (h *Health) AddReadiness(name string, c Check) { h.add(&h.ready, name, c) }

// AddLiveness adds a liveness check (replacing one of the same name).
// Keep liveness checks to conditions a restart fixes: a lost NATS is a
// readiness matter, not a reason to kill the process.
func (h *Health) AddLiveness(name string, c Check) { h.add(&h.live, name, c) }

func (h *Health) add(list *[]namedCheck, name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range *list {
		if (*list)[i].name == name {
			(*list)[i].check = c
			return
		}
	}
	*list = append(*list, namedCheck{name, c})
}

// Result is the outcome of one check.
type Result struct {
	Name string
	Err  error
}

// Ready runs every readiness check and returns their results in
// registration order.
func (h *Health) Ready(ctx context.Context) []Result { return h.run(ctx, &h.ready, "") }

// Live runs every liveness check.
func (h *Health) Live(ctx context.Context) []Result { return h.run(ctx, &h.live, "") }

func (h *Health) run(ctx context.Context, list *[]namedCheck, only string) []Result {
	h.mu.RLock()
	checks := append([]namedCheck(nil), *list...)
	h.mu.RUnlock()
	var out []Result
	for _, c := range checks {
		if only != "" && c.name != only {
			continue
		}
		out = append(out, Result{Name: c.name, Err: h.runOne(ctx, c.check)})
	}
	return out
}

// runOne runs c with the check timeout; a check that does not return in
// time fails (it keeps running in the background until it does).
func (h *Health) runOne(ctx context.Context, c Check) (err error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("check panicked: %v", r)
			}
		}()
		done <- c(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("check did not answer within %s", h.timeout)
	}
}

// Register serves /healthz, /livez, /readyz (and /livez/<check>,
// /readyz/<check>) on mux.
func (h *Health) Register(mux *http.ServeMux) {
	mux.HandleFunc(PathHealthz, func(w http.ResponseWriter, r *http.Request) {
		writeResults(w, r, "healthz", nil)
	})
	for _, ep := range []struct {
		path string
		list *[]namedCheck
	}{{PathLivez, &h.live}, {PathReadyz, &h.ready}} {
		name := strings.TrimPrefix(ep.path, "/")
		mux.HandleFunc(ep.path, func(w http.ResponseWriter, r *http.Request) {
			writeResults(w, r, name, h.run(r.Context(), ep.list, ""))
		})
		mux.HandleFunc(ep.path+"/{check}", func(w http.ResponseWriter, r *http.Request) {
			check := r.PathValue("check")
			res := h.run(r.Context(), ep.list, check)
			if len(res) == 0 {
				http.Error(w, fmt.Sprintf("%s: no check named %q", name, check), http.StatusNotFound)
				return
			}
			writeResults(w, r, name, res)
		})
	}
}

// writeResults answers 200 "ok" when every check passed and 503 with
// every failed check ("[-]name failed: err") otherwise; ?verbose lists
// the passed ones too ("[+]name ok").
func writeResults(w http.ResponseWriter, r *http.Request, endpoint string, res []Result) {
	_, verbose := r.URL.Query()["verbose"]
	var b strings.Builder
	failed := 0
	for _, x := range res {
		if x.Err != nil {
			failed++
			fmt.Fprintf(&b, "[-]%s failed: %v\n", x.Name, x.Err)
		} else if verbose {
			fmt.Fprintf(&b, "[+]%s ok\n", x.Name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if failed > 0 {
		fmt.Fprintf(&b, "%s check failed\n", endpoint)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(b.String()))
		return
	}
	if verbose {
		fmt.Fprintf(&b, "%s check passed\n", endpoint)
		_, _ = w.Write([]byte(b.String()))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
