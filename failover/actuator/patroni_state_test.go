package actuator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/patroni"
)

// patroniState is a three-member cluster behind Patroni's REST API, as
// far as the driver uses it: GET /cluster and POST /switchover with
// Patroni's status codes and texts, and a switchover that really moves
// the leader. Every actuator reaches it through an endpoint of its own,
// so the test knows who sent what and can "kill" one at a precise point.
type patroniState struct {
	scope string

	mu       sync.Mutex
	leader   string
	timeline int64
	switches []switchRecord
	quit     chan struct{} // closed when the test ends: blocked handlers return
	stopOnce sync.Once
}

// switchRecord is one switchover the cluster performed.
type switchRecord struct {
	By, From, To string
	Token        uint64
}

// patroniEndpoint is one actuator's way into the cluster.
type patroniEndpoint struct {
	name  string
	state *patroniState
	srv   *httptest.Server

	endpointFault
}

// endpointFault is what the lab's Patroni endpoints (this fake and the
// proxy before a real Patroni) share: a hook run after a switchover and
// before its answer, and a kill after which every request hangs until
// quit closes, as towards a dead process.
type endpointFault struct {
	quit     <-chan struct{}
	mu       sync.Mutex
	dead     bool
	onSwitch func()
}

// setOnSwitch sets the hook run after each switchover.
func (f *endpointFault) setOnSwitch(fn func()) {
	f.mu.Lock()
	f.onSwitch = fn
	f.mu.Unlock()
}

// kill makes the endpoint unanswering from now on.
func (f *endpointFault) kill() {
	f.mu.Lock()
	f.dead = true
	f.mu.Unlock()
}

// hangIfDead holds r until it ends or quit closes, if the endpoint was
// killed, and reports whether it was.
func (f *endpointFault) hangIfDead(r *http.Request) bool {
	f.mu.Lock()
	dead := f.dead
	f.mu.Unlock()
	if dead {
		select {
		case <-r.Context().Done():
		case <-f.quit:
		}
	}
	return dead
}

// switched runs the hook (unlocked), then hangs r if the endpoint was
// killed meanwhile, and reports whether it was.
func (f *endpointFault) switched(r *http.Request) bool {
	f.mu.Lock()
	hook := f.onSwitch
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return f.hangIfDead(r)
}

var labHosts = []string{"db-1", "db-2", "db-3"}

// labPatroni is a Patroni cluster as the cluster lab needs it.
type labPatroni interface {
	Scope() string
	// Hosts are the members (also the mciv host names).
	Hosts() []string
	// Leader is the current leader; LeaderAddr its PostgreSQL address
	// as Patroni reports it ("" when unknown).
	Leader() string
	LeaderAddr() string
	// endpoint is a way in of the actuator named name.
	endpoint(t *testing.T, name string) labEndpoint
	// stop releases every request left hanging.
	stop()
}

// labEndpoint is one actuator's way into Patroni.
type labEndpoint interface {
	// driver is a real Patroni driver through the endpoint.
	driver(t *testing.T) failover.Driver
	// kill makes the endpoint unanswering, as towards a dead process.
	kill()
	// setOnSwitch sets what runs after the cluster accepted a switchover
	// through the endpoint, before the answer.
	setOnSwitch(f func())
}

func newPatroniState(scope string) *patroniState {
	return &patroniState{scope: scope, leader: "db-1", timeline: 4, quit: make(chan struct{})}
}

// memberHost is the address of member m (db-N at 10.0.0.N).
func memberHost(m string) string { return "10.0.0." + m[len("db-"):] }

// memberAddr is the PostgreSQL address of member m.
func memberAddr(m string) string { return memberHost(m) + ":5432" }

// Scope is the cluster's name.
func (s *patroniState) Scope() string { return s.scope }

// Hosts are the members.
func (s *patroniState) Hosts() []string { return labHosts }

// LeaderAddr is the leader's PostgreSQL address.
func (s *patroniState) LeaderAddr() string { return memberAddr(s.Leader()) }

// Leader returns the current leader.
func (s *patroniState) Leader() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

// Switches returns the switchovers performed so far.
func (s *patroniState) Switches() []switchRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]switchRecord(nil), s.switches...)
}

// endpoint starts an HTTP server for the actuator named name.
func (s *patroniState) endpoint(t *testing.T, name string) labEndpoint {
	t.Helper()
	e := &patroniEndpoint{name: name, state: s, endpointFault: endpointFault{quit: s.quit}}
	e.srv = httptest.NewServer(e)
	t.Cleanup(func() {
		s.stop() // first: Close waits for the handlers
		e.srv.Close()
	})
	return e
}

// stop releases every hanging handler.
func (s *patroniState) stop() { s.stopOnce.Do(func() { close(s.quit) }) }

// driver returns a real Patroni driver reaching the cluster through e.
func (e *patroniEndpoint) driver(t *testing.T) failover.Driver {
	t.Helper()
	d, err := patroni.New(patroni.Config{Cluster: e.state.scope, Endpoints: []string{e.srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *patroniEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.hangIfDead(r) {
		return
	}
	s := e.state
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/cluster":
		s.mu.Lock()
		var members []map[string]any
		for _, m := range labHosts {
			jm := map[string]any{"name": m, "role": "replica", "state": "streaming", "host": memberHost(m),
				"port": 5432, "timeline": s.timeline, "api_url": "http://" + r.Host + "/patroni", "lag": 0}
			if m == s.leader {
				jm["role"], jm["state"] = "leader", "running"
				delete(jm, "lag")
			}
			members = append(members, jm)
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"scope": s.scope, "members": members})
	case r.Method == http.MethodPost && r.URL.Path == "/switchover":
		var body struct{ Leader, Candidate string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "Failed to parse request", http.StatusBadRequest)
			return
		}
		token, _ := strconv.ParseUint(r.Header.Get(patroni.HeaderFencingToken), 10, 64)
		s.mu.Lock()
		switch {
		case body.Leader != s.leader:
			s.mu.Unlock()
			w.WriteHeader(http.StatusPreconditionFailed)
			_, _ = w.Write([]byte("leader name does not match"))
			return
		case body.Candidate == s.leader || !isLabHost(body.Candidate):
			s.mu.Unlock()
			w.WriteHeader(http.StatusPreconditionFailed)
			_, _ = fmt.Fprintf(w, "candidate name does not match with sync_standby")
			return
		}
		rec := switchRecord{By: e.name, From: s.leader, To: body.Candidate, Token: token}
		s.leader = body.Candidate
		s.timeline++
		s.switches = append(s.switches, rec)
		s.mu.Unlock()
		if e.switched(r) {
			return
		}
		_, _ = fmt.Fprintf(w, "Successfully switched over to %q", body.Candidate)
	default:
		http.NotFound(w, r)
	}
}

func isLabHost(m string) bool {
	for _, h := range labHosts {
		if h == m {
			return true
		}
	}
	return false
}
