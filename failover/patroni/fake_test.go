package patroni

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeMember is one member of the fake cluster.
type fakeMember struct {
	Name     string
	Role     string // leader, replica, sync_standby
	State    string
	Timeline int64
	Lag      any // int64 or "unknown"; ignored for the leader
	Tags     map[string]any
	APIURL   string // overrides the server's own URL when set
}

// post records one POST as the server saw it.
type post struct {
	Path             string
	ContentLength    int64
	TransferEncoding []string
	Token            string
	Reason           string
	Body             map[string]any
}

// fakePatroni speaks the part of Patroni's REST API the driver uses, with
// Patroni 3/4's status codes and texts (patroni/api.py do_POST_failover).
type fakePatroni struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	members []*fakeMember
	paused  bool
	user    string
	pass    string
	posts   []post
	// onPost, when set, answers a POST after authentication and body
	// parsing instead of the default behaviour.
	onPost func(f *fakePatroni, w http.ResponseWriter, r *http.Request, p post)
}

func newFake(t *testing.T, tls bool) *fakePatroni {
	t.Helper()
	f := &fakePatroni{t: t, user: "patroni", pass: "s3cret", members: []*fakeMember{
		{Name: "pg0", Role: "leader", State: "running", Timeline: 3},
		{Name: "pg1", Role: "replica", State: "streaming", Timeline: 3, Lag: int64(0)},
		{Name: "pg2", Role: "replica", State: "streaming", Timeline: 3, Lag: int64(16)},
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster", f.getCluster)
	mux.HandleFunc("POST /switchover", f.postAction)
	mux.HandleFunc("POST /failover", f.postAction)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS tests provoke handshake errors
	if tls {
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePatroni) URL() string { return f.srv.URL }

func (f *fakePatroni) Posts() []post {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]post(nil), f.posts...)
}

func (f *fakePatroni) member(name string) *fakeMember {
	for _, m := range f.members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

func (f *fakePatroni) leaderLocked() *fakeMember {
	for _, m := range f.members {
		if m.Role == "leader" {
			return m
		}
	}
	return nil
}

// promote makes name the leader on a new timeline, as a switchover does.
func (f *fakePatroni) promote(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var tl int64
	for _, m := range f.members {
		tl = max(tl, m.Timeline)
	}
	for _, m := range f.members {
		if m.Role == "leader" {
			m.Role = "replica"
		}
		if m.Name == name {
			m.Role, m.State = "leader", "running"
		}
		m.Timeline = tl + 1 // the others follow the new timeline
	}
}

func (f *fakePatroni) getCluster(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]any{}
	var ms []map[string]any
	for _, m := range f.members {
		api := f.srv.URL + "/patroni"
		if m.APIURL != "" {
			api = m.APIURL
		}
		j := map[string]any{"name": m.Name, "role": m.Role, "state": m.State, "api_url": api,
			"host": "127.0.0.1", "port": 5432, "timeline": m.Timeline}
		if m.Role != "leader" {
			j["lag"] = m.Lag
		}
		if m.Tags != nil {
			j["tags"] = m.Tags
		}
		ms = append(ms, j)
	}
	out["members"] = ms
	if f.paused {
		out["pause"] = true
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// text writes a plain-text answer the way Patroni's _write_response does.
func text(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}

func (f *fakePatroni) postAction(w http.ResponseWriter, r *http.Request) {
	action := strings.TrimPrefix(r.URL.Path, "/")
	p := post{Path: r.URL.Path, ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding,
		Token: r.Header.Get(HeaderFencingToken), Reason: r.Header.Get(HeaderReason)}
	// Record before anything else, so that every POST counts.
	dec := json.NewDecoder(r.Body)
	bodyErr := dec.Decode(&p.Body)
	f.mu.Lock()
	f.posts = append(f.posts, p)
	f.mu.Unlock()

	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(f.user+":"+f.pass))
	got := r.Header.Get("Authorization")
	switch {
	case got == "":
		w.Header().Set("WWW-Authenticate", `Basic realm="Patroni"`)
		text(w, http.StatusUnauthorized, "no auth header received")
		return
	case subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1:
		w.Header().Set("WWW-Authenticate", `Basic realm="Patroni"`)
		text(w, http.StatusUnauthorized, "not authenticated")
		return
	case len(r.TransferEncoding) > 0 || r.ContentLength < 0:
		text(w, http.StatusLengthRequired, "Length Required")
		return
	case bodyErr != nil || len(p.Body) == 0:
		text(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if f.onPost != nil {
		f.onPost(f, w, r, p)
		return
	}
	leader, _ := p.Body["leader"].(string)
	candidate, _ := p.Body["candidate"].(string)
	title := strings.ToUpper(action[:1]) + action[1:]

	f.mu.Lock()
	var msg string
	code := http.StatusBadRequest
	cur := f.leaderLocked()
	switch {
	case action == "failover" && candidate == "":
		msg = "Failover could be performed only to a specific candidate"
	case action == "switchover" && leader == "":
		msg = "Switchover could be performed only from a specific leader"
	case f.paused && candidate == "":
		msg = title + " is possible only to a specific candidate in a paused state"
	case leader != "" && leader == candidate:
		msg = "Switchover target and source are the same"
	case leader != "" && (cur == nil || cur.Name != leader):
		code, msg = http.StatusPreconditionFailed, "leader name does not match"
	case candidate != "" && f.member(candidate) == nil:
		code, msg = http.StatusPreconditionFailed, "candidate does not exists"
	case candidate != "" && f.member(candidate).Tags["nofailover"] == true:
		code, msg = http.StatusPreconditionFailed, action+" is not possible: no good candidates have been found"
	default:
		code = http.StatusOK
	}
	f.mu.Unlock()
	if code != http.StatusOK {
		text(w, code, msg)
		return
	}
	f.promote(candidate)
	verb := map[string]string{"switchover": "switched", "failover": "failed"}[action]
	text(w, http.StatusOK, fmt.Sprintf("Successfully %s over to %q", verb, candidate))
}
