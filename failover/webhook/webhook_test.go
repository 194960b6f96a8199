package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
)

// receiver is a webhook endpoint plus an optional topology endpoint.
type receiver struct {
	mu       sync.Mutex
	posts    []*http.Request
	payloads []Payload
	answer   func(w http.ResponseWriter, r *http.Request)
	topo     failover.Topology
	srv      *httptest.Server
}

func newReceiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{answer: answer, topo: failover.Topology{Members: []failover.Member{
		{Name: "a", Role: failover.RoleLeader, State: "running", Timeline: 2},
		{Name: "b", Role: failover.RoleReplica, State: "streaming", Timeline: 2},
	}}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /act", func(w http.ResponseWriter, r *http.Request) {
		var p Payload
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &p)
		rc.mu.Lock()
		rc.posts = append(rc.posts, r)
		rc.payloads = append(rc.payloads, p)
		rc.mu.Unlock()
		rc.answer(w, r)
	})
	mux.HandleFunc("GET /topology", func(w http.ResponseWriter, _ *http.Request) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		_ = json.NewEncoder(w).Encode(rc.topo)
	})
	rc.srv = httptest.NewServer(mux)
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) promoteB() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.topo.Members[0].Role, rc.topo.Members[1].Role, rc.topo.Members[1].Timeline = failover.RoleReplica, failover.RoleLeader, 3
}

func (rc *receiver) onePost(t *testing.T) (*http.Request, Payload) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.posts) != 1 {
		t.Fatalf("receiver saw %d POSTs, want 1", len(rc.posts))
	}
	r := rc.posts[0]
	if r.ContentLength <= 0 || len(r.TransferEncoding) > 0 {
		t.Fatalf("no Content-Length: %d %v", r.ContentLength, r.TransferEncoding)
	}
	return r, rc.payloads[0]
}

func cfg(rc *receiver, withTopology bool) Config {
	c := Config{Cluster: "c1", URL: rc.srv.URL + "/act", Header: http.Header{"Authorization": {"Bearer t0ken"}},
		RequestTimeout: 200 * time.Millisecond, ConfirmTimeout: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	if withTopology {
		c.TopologyURL = rc.srv.URL + "/topology"
	}
	return c
}

var req = failover.Request{Cluster: "c1", From: "a", To: "b", FencingToken: 9, Reason: "test"}

func TestWebhookAnswers(t *testing.T) {
	jsonAnswer := func(code int, body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}
	}
	tests := []struct {
		name    string
		answer  func(http.ResponseWriter, *http.Request)
		topo    bool
		promote bool
		want    error
		outcome failover.Outcome
	}{
		{name: "200, no topology", answer: jsonAnswer(200, `{"new_leader":"b"}`), outcome: failover.OutcomeSucceeded},
		{name: "204, no topology", answer: jsonAnswer(204, ``), outcome: failover.OutcomeSucceeded},
		{name: "200 names another leader", answer: jsonAnswer(200, `{"new_leader":"z"}`),
			want: failover.ErrUnexpectedLeader, outcome: failover.OutcomeOtherLeader},
		{name: "200 confirmed by topology", answer: jsonAnswer(200, ``), topo: true, promote: true,
			outcome: failover.OutcomeSucceeded},
		{name: "200 not confirmed", answer: jsonAnswer(200, ``), topo: true,
			want: failover.ErrUnknownOutcome, outcome: failover.OutcomeUnknown},
		{name: "202 then confirmed", answer: jsonAnswer(202, ``), topo: true, promote: true,
			outcome: failover.OutcomeSucceeded},
		{name: "202 without topology", answer: jsonAnswer(202, ``),
			want: failover.ErrUnknownOutcome, outcome: failover.OutcomeUnknown},
		{name: "412", answer: jsonAnswer(412, `{"detail":"maintenance window"}`),
			want: failover.ErrPrecondition, outcome: failover.OutcomeNotAttempted},
		{name: "401", answer: jsonAnswer(401, ``), want: failover.ErrAuth, outcome: failover.OutcomeNotAttempted},
		{name: "400", answer: jsonAnswer(400, ``), want: failover.ErrRejected, outcome: failover.OutcomeNotAttempted},
		{name: "500 failed", answer: jsonAnswer(500, `{"outcome":"failed"}`),
			want: failover.ErrFailed, outcome: failover.OutcomeFailed},
		{name: "502", answer: jsonAnswer(502, ``), want: failover.ErrUnknownOutcome, outcome: failover.OutcomeUnknown},
		{name: "slower than the timeout", answer: func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			want: failover.ErrTimeout, outcome: failover.OutcomeUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rc *receiver
			answer := tc.answer
			rc = newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.promote {
					rc.promoteB()
				}
				answer(w, r)
			})
			d, err := New(cfg(rc, tc.topo))
			if err != nil {
				t.Fatal(err)
			}
			res, err := d.Switchover(context.Background(), req)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if res.Outcome != tc.outcome {
				t.Fatalf("outcome = %s, want %s (%+v)", res.Outcome, tc.outcome, res)
			}
			r, p := rc.onePost(t)
			if r.Header.Get(HeaderFencingToken) != "9" || r.Header.Get(HeaderActionID) != "c1/switchover/9" ||
				r.Header.Get("Authorization") != "Bearer t0ken" {
				t.Fatalf("headers = %v", r.Header)
			}
			if p.Version != 1 || p.Action != failover.ActionSwitchover || p.From != "a" || p.To != "b" ||
				p.FencingToken != 9 || p.Reason != "test" || (p.Topology != nil) != tc.topo {
				t.Fatalf("payload = %+v", p)
			}
		})
	}
}

func TestWebhookRefusals(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	d, err := New(cfg(rc, true))
	if err != nil {
		t.Fatal(err)
	}
	fo := req
	if _, err := d.Failover(context.Background(), fo); !errors.Is(err, failover.ErrPrimaryAlive) {
		t.Fatalf("failover without confirmation: %v", err)
	}
	rc.topo.Paused = true
	if _, err := d.Switchover(context.Background(), req); !errors.Is(err, failover.ErrPaused) {
		t.Fatalf("paused: %v", err)
	}
	other := req
	other.Cluster = "c2"
	if _, err := d.Switchover(context.Background(), other); !errors.Is(err, failover.ErrInvalidRequest) {
		t.Fatalf("other cluster: %v", err)
	}
	if len(rc.posts) != 0 {
		t.Fatalf("%d POSTs after refusals", len(rc.posts))
	}
	if _, err := New(Config{URL: "ftp://x"}); err == nil {
		t.Fatal("ftp URL accepted")
	}
	nt, _ := New(Config{URL: rc.srv.URL})
	if _, err := nt.Topology(context.Background()); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Topology without URL: %v", err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "config", cfg(rc, false))
	if strings.Contains(buf.String(), "t0ken") {
		t.Fatalf("header value logged: %s", buf.String())
	}
}
