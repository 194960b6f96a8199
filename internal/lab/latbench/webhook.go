package latbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxWebhookBody bounds one webhook request's body.
const maxWebhookBody = 1 << 20

// webhookMessage is the part of Alertmanager's webhook payload (version 4)
// the benchmark reads.
type webhookMessage struct {
	Version string `json:"version"`
	Status  string `json:"status"` // "firing" while any alert of the group fires
	Alerts  []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// Webhook is an Alertmanager webhook receiver on loopback. Each setting
// posts to its own path, /hook/<name>, and has its own Feed.
type Webhook struct {
	srv    *http.Server
	ln     net.Listener
	logger *slog.Logger

	mu    sync.Mutex
	feeds map[string]*Feed
	bad   int // requests that did not decode
}

// StartWebhook listens on 127.0.0.1 (a free port) and serves until Close.
func StartWebhook(logger *slog.Logger) (*Webhook, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("latbench: webhook listen: %w", err)
	}
	w := &Webhook{ln: ln, logger: logger, feeds: make(map[string]*Feed)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook/{name}", w.serve)
	w.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = w.srv.Serve(ln) }()
	return w, nil
}

// URL is the webhook address for the setting name.
func (w *Webhook) URL(name string) string {
	return "http://" + w.ln.Addr().String() + "/hook/" + name
}

// Feed returns the feed of the setting name (created on first use).
func (w *Webhook) Feed(name string) *Feed {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.feeds[name]
	if !ok {
		f = NewFeed()
		w.feeds[name] = f
	}
	return f
}

// Malformed returns how many requests did not decode.
func (w *Webhook) Malformed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bad
}

// Close stops the server.
func (w *Webhook) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.srv.Shutdown(ctx)
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request) {
	at := time.Now()
	name := r.PathValue("name")
	n, err := decodeWebhook(io.LimitReader(r.Body, maxWebhookBody))
	if err != nil {
		w.mu.Lock()
		w.bad++
		w.mu.Unlock()
		w.logger.Warn("latbench: webhook request did not decode", "setting", name, "err", err)
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	n.At = at
	w.Feed(name).Add(n)
	rw.WriteHeader(http.StatusOK)
}

// decodeWebhook reads one Alertmanager webhook payload as a Note (At unset).
func decodeWebhook(r io.Reader) (Note, error) {
	var m webhookMessage
	dec := json.NewDecoder(r)
	if err := dec.Decode(&m); err != nil {
		return Note{}, fmt.Errorf("webhook body: %w", err)
	}
	if m.Version != "4" {
		return Note{}, fmt.Errorf("webhook body: version %q, want \"4\"", m.Version)
	}
	var firing bool
	switch m.Status {
	case "firing":
		firing = true
	case "resolved":
	default:
		return Note{}, fmt.Errorf("webhook body: status %q, want firing or resolved", m.Status)
	}
	if len(m.Alerts) == 0 {
		return Note{}, errors.New("webhook body: no alerts")
	}
	var names []string
	for _, a := range m.Alerts {
		names = append(names, a.Labels["alertname"]+"="+a.Status)
	}
	return Note{Firing: firing, What: m.Status + ": " + strings.Join(names, ", ")}, nil
}
