package actuator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/patroni"
)

// fakePatroniAPI serves GET /cluster like Patroni (labTopology) and answers
// every POST /switchover with a fixed status and text, after delay.
type fakePatroniAPI struct {
	status   int
	body     string
	delay    time.Duration
	getDelay time.Duration
	quit     chan struct{} // closed when the test ends
	mu       sync.Mutex
	posts    int
}

func (f *fakePatroniAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wait := func(d time.Duration) {
		select {
		case <-r.Context().Done():
		case <-f.quit:
		case <-time.After(d):
		}
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/cluster":
		wait(f.getDelay)
		var members []map[string]any
		for _, m := range labTopology().Members {
			jm := map[string]any{"name": m.Name, "role": string(m.Role), "state": m.State, "host": m.Host,
				"port": m.Port, "timeline": m.Timeline, "api_url": "http://" + r.Host + "/patroni"}
			if !m.IsLeader() {
				jm["lag"] = m.LagBytes
			}
			members = append(members, jm)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"scope": testCluster, "members": members})
	case r.Method == http.MethodPost && r.URL.Path == "/switchover":
		f.mu.Lock()
		f.posts++
		f.mu.Unlock()
		wait(f.delay)
		if f.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="Patroni"`)
		}
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
	default:
		http.NotFound(w, r)
	}
}

// TestPatroniAnswers drives the real Patroni driver against a fake API
// answering 412, 503, 401 or slower than 20 s: no failover happens, the
// audit record says why, and nothing is sent twice.
func TestPatroniAnswers(t *testing.T) {
	_, js := startNATS(t)
	cases := []struct {
		name     string
		api      *fakePatroniAPI
		guard    Safeguard
		decision string
		outcome  failover.Outcome
		posts    int
	}{
		{"412", &fakePatroniAPI{status: 412, body: "switchover is not possible: no good candidates have been found"},
			GuardDriver, DecisionRefused, failover.OutcomeNotAttempted, 1},
		{"503", &fakePatroniAPI{status: 503, body: "Switchover failed"}, GuardDriver, DecisionActed, failover.OutcomeFailed, 1},
		{"503 status unknown", &fakePatroniAPI{status: 503, body: "Switchover status unknown after 20 seconds; operation may still be in progress"},
			GuardDriver, DecisionActed, failover.OutcomeUnknown, 1},
		{"401", &fakePatroniAPI{status: 401, body: "not authenticated"}, GuardDriver, DecisionRefused, failover.OutcomeNotAttempted, 1},
		{"POST slower than 20 s", &fakePatroniAPI{status: 200, body: `Successfully switched over to "db-2"`, delay: 25 * time.Second},
			GuardDriver, DecisionActed, failover.OutcomeUnknown, 1},
		{"GET /cluster slower than 20 s", &fakePatroniAPI{status: 200, getDelay: 25 * time.Second}, GuardTopology, DecisionRefused, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := tc.api
			api.quit = make(chan struct{})
			srv := httptest.NewServer(api)
			defer srv.Close()
			defer close(api.quit)
			drv, err := patroni.New(patroni.Config{
				Cluster: testCluster, Endpoints: []string{srv.URL}, Username: "patroni", Password: "secret",
				TopologyTimeout: 500 * time.Millisecond, ConfirmTimeout: time.Second, PollInterval: 50 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			// The lease bounds the driver call: 3 s TTL − 1 s margin.
			h := newHarness(t, js, bucket(), func(c *Config) {
				c.LeaseTTL, c.LeaseMargin = Duration(3*time.Second), Duration(time.Second)
			})
			h.act.drivers = map[string]failover.Driver{testCluster: drv}
			h.healthyEvidence()
			got := h.handle(h.alert("db-1", 20*time.Second))
			if got.Safeguard != string(tc.guard) || got.Decision != tc.decision || got.Outcome != string(tc.outcome) {
				t.Fatalf("%s/%s by %s, want %s/%s by %s: %s", got.Decision, got.Outcome, got.Safeguard,
					tc.decision, tc.outcome, tc.guard, got.Reason)
			}
			// A second alert for the same fault never sends a second POST.
			h.healthyEvidence()
			again := h.handle(h.alert("db-1", 20*time.Second))
			api.mu.Lock()
			posts := api.posts
			api.mu.Unlock()
			if tc.decision == DecisionActed && posts != 1 {
				t.Errorf("%d POSTs after two alerts, want 1 (then %s)", posts, again.Safeguard)
			}
			if tc.decision == DecisionActed && again.Safeguard != string(GuardCooldown) {
				t.Errorf("second alert: %s %s, want cooldown", again.Decision, again.Safeguard)
			}
			if a := lastAudit(t, js); a.ID != again.ID {
				t.Errorf("audit stream has %s, want %s", a.ID, again.ID)
			}
			t.Logf("%s → %s", tc.name, got.Reason)
		})
	}
}
