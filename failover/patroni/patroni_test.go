package patroni

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
)

// testConfig uses short timeouts; production defaults are ≥ 30 s.
func testConfig(f *fakePatroni) Config {
	return Config{
		Cluster:         "lab",
		Endpoints:       []string{f.URL()},
		Username:        "patroni",
		Password:        "s3cret",
		RequestTimeout:  300 * time.Millisecond,
		TopologyTimeout: 2 * time.Second,
		ConfirmTimeout:  400 * time.Millisecond,
		PollInterval:    10 * time.Millisecond,
	}
}

func newDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func switchReq() failover.Request {
	return failover.Request{Cluster: "lab", From: "pg0", To: "pg1", FencingToken: 42, Reason: "QueryLatencyAnomaly on pg0"}
}

// onePost asserts that exactly one POST reached the server, with a
// Content-Length, and returns it.
func onePost(t *testing.T, f *fakePatroni) post {
	t.Helper()
	ps := f.Posts()
	if len(ps) != 1 {
		t.Fatalf("server saw %d POSTs, want exactly 1: %+v", len(ps), ps)
	}
	p := ps[0]
	if p.ContentLength <= 0 || len(p.TransferEncoding) > 0 {
		t.Fatalf("POST without Content-Length: length %d, transfer-encoding %v", p.ContentLength, p.TransferEncoding)
	}
	if p.Token != "42" {
		t.Fatalf("fencing token header = %q, want 42", p.Token)
	}
	return p
}

func noPost(t *testing.T, f *fakePatroni) {
	t.Helper()
	if ps := f.Posts(); len(ps) != 0 {
		t.Fatalf("server saw %d POSTs, want none: %+v", len(ps), ps)
	}
}

func TestSwitchoverSucceeds(t *testing.T) {
	f := newFake(t, false)
	d := newDriver(t, testConfig(f))
	res, err := d.Switchover(context.Background(), switchReq())
	if err != nil {
		t.Fatalf("Switchover: %v", err)
	}
	p := onePost(t, f)
	if p.Path != "/switchover" || p.Body["leader"] != "pg0" || p.Body["candidate"] != "pg1" || len(p.Body) != 2 {
		t.Fatalf("POST %s %v, want /switchover {leader: pg0, candidate: pg1}", p.Path, p.Body)
	}
	if p.Reason != "QueryLatencyAnomaly on pg0" {
		t.Fatalf("reason header = %q", p.Reason)
	}
	if res.Outcome != failover.OutcomeSucceeded || res.NewLeader != "pg1" || !res.Sent || res.FencingToken != 42 {
		t.Fatalf("result = %+v", res)
	}
	if l, _ := res.Before.Leader(); l.Name != "pg0" {
		t.Fatalf("before leader = %q", l.Name)
	}
	if l, _ := res.After.Leader(); l.Name != "pg1" || l.Timeline != 4 {
		t.Fatalf("after leader = %+v", l)
	}
	if !strings.Contains(res.Detail, `Successfully switched over to "pg1"`) {
		t.Fatalf("detail = %q", res.Detail)
	}
}

func TestSwitchoverAnswers(t *testing.T) {
	hang := func(f *fakePatroni, w http.ResponseWriter, r *http.Request, _ post) {
		select { // slower than RequestTimeout; ends when the client gives up
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	tests := []struct {
		name    string
		onPost  func(f *fakePatroni, w http.ResponseWriter, r *http.Request, p post)
		pass    string
		want    []error
		outcome failover.Outcome
		leader  string // expected leader afterwards
		status  int
	}{
		{
			name: "412 no good candidates",
			onPost: func(_ *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				text(w, 412, "switchover is not possible: no good candidates have been found")
			},
			want:    []error{failover.ErrPrecondition, failover.ErrCandidateIneligible},
			outcome: failover.OutcomeNotAttempted, leader: "pg0", status: 412,
		},
		{
			name: "412 leader name does not match",
			onPost: func(_ *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				text(w, 412, "leader name does not match")
			},
			want:    []error{failover.ErrPrecondition, failover.ErrLeaderMismatch},
			outcome: failover.OutcomeNotAttempted, leader: "pg0", status: 412,
		},
		{
			name: "503 switchover failed",
			onPost: func(_ *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				text(w, 503, "Switchover failed")
			},
			want:    []error{failover.ErrFailed},
			outcome: failover.OutcomeFailed, leader: "pg0", status: 503,
		},
		{
			name: "503 DCS write failed",
			onPost: func(_ *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				text(w, 503, "failed to write failover key into DCS")
			},
			want:    []error{failover.ErrFailed},
			outcome: failover.OutcomeFailed, leader: "pg0", status: 503,
		},
		{
			name: "503 status unknown, nothing moves",
			onPost: func(_ *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				text(w, 503, "Switchover status unknown after 20 seconds; operation may still be in progress")
			},
			want:    []error{failover.ErrUnknownOutcome, failover.ErrTimeout},
			outcome: failover.OutcomeUnknown, leader: "pg0", status: 503,
		},
		{
			name: "503 status unknown, then the candidate leads",
			onPost: func(f *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				f.promote("pg1")
				text(w, 503, "Switchover status unknown")
			},
			outcome: failover.OutcomeSucceeded, leader: "pg1",
		},
		{
			name:    "401 wrong password",
			pass:    "wrong",
			want:    []error{failover.ErrAuth},
			outcome: failover.OutcomeNotAttempted, leader: "pg0", status: 401,
		},
		{
			name: "403 allowlist",
			onPost: func(_ *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				text(w, 403, "Access is denied")
			},
			want:    []error{failover.ErrAuth},
			outcome: failover.OutcomeNotAttempted, leader: "pg0", status: 403,
		},
		{
			name: "400 bad request",
			onPost: func(_ *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				text(w, 400, "Switchover target and source are the same")
			},
			want:    []error{failover.ErrRejected},
			outcome: failover.OutcomeNotAttempted, leader: "pg0", status: 400,
		},
		{
			name: "200 but another member won",
			onPost: func(f *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				f.promote("pg2")
				text(w, 200, `Switched over to "pg2" instead of "pg1"`)
			},
			want:    []error{failover.ErrUnexpectedLeader},
			outcome: failover.OutcomeOtherLeader, leader: "pg2",
		},
		{
			name: "200 never confirmed",
			onPost: func(_ *fakePatroni, w http.ResponseWriter, _ *http.Request, _ post) {
				text(w, 200, `Successfully switched over to "pg1"`)
			},
			want:    []error{failover.ErrUnknownOutcome},
			outcome: failover.OutcomeUnknown, leader: "pg0",
		},
		{
			name:    "handler slower than the client timeout",
			onPost:  hang,
			want:    []error{failover.ErrUnknownOutcome, failover.ErrTimeout},
			outcome: failover.OutcomeUnknown, leader: "pg0",
		},
		{
			name: "timeout, yet the candidate leads",
			onPost: func(f *fakePatroni, w http.ResponseWriter, r *http.Request, p post) {
				f.promote("pg1")
				hang(f, w, r, p)
			},
			outcome: failover.OutcomeSucceeded, leader: "pg1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, false)
			f.onPost = tc.onPost
			cfg := testConfig(f)
			if tc.pass != "" {
				cfg.Password = tc.pass
			}
			d := newDriver(t, cfg)
			res, err := d.Switchover(context.Background(), switchReq())
			onePost(t, f)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v; want errors.Is %v", err, w)
				}
			}
			if len(tc.want) == 0 && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			if got := failover.OutcomeOf(err); got != tc.outcome || res.Outcome != tc.outcome {
				t.Errorf("outcome = %s (result %s), want %s", got, res.Outcome, tc.outcome)
			}
			var fe *failover.Error
			if tc.status != 0 && (!errors.As(err, &fe) || fe.Status != tc.status || !fe.Sent) {
				t.Errorf("err = %#v, want *failover.Error with status %d, sent", err, tc.status)
			}
			top, terr := d.Topology(context.Background())
			if terr != nil {
				t.Fatalf("Topology: %v", terr)
			}
			if l, _ := top.Leader(); l.Name != tc.leader {
				t.Errorf("leader after = %q, want %q", l.Name, tc.leader)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestLocalRefusalsSendNothing(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fakePatroni)
		req   func(r *failover.Request)
		want  error
	}{
		{name: "paused", setup: func(f *fakePatroni) { f.paused = true }, want: failover.ErrPaused},
		{name: "candidate nofailover", setup: func(f *fakePatroni) {
			f.member("pg1").Tags = map[string]any{"nofailover": true}
		}, want: failover.ErrCandidateIneligible},
		{name: "candidate failover_priority 0", setup: func(f *fakePatroni) {
			f.member("pg1").Tags = map[string]any{"failover_priority": 0}
		}, want: failover.ErrCandidateIneligible},
		{name: "candidate stopped", setup: func(f *fakePatroni) { f.member("pg1").State = "stopped" },
			want: failover.ErrCandidateIneligible},
		{name: "candidate unknown", req: func(r *failover.Request) { r.To = "pg9" }, want: failover.ErrCandidateIneligible},
		{name: "candidate is the leader", req: func(r *failover.Request) { r.From, r.To = "pg1", "pg0" },
			want: failover.ErrLeaderMismatch},
		{name: "candidate lags", req: func(r *failover.Request) { r.To, r.MaxLagBytes = "pg2", 8 },
			want: failover.ErrCandidateIneligible},
		{name: "candidate lag unknown", setup: func(f *fakePatroni) { f.member("pg1").Lag = "unknown" },
			req: func(r *failover.Request) { r.MaxLagBytes = 1 << 20 }, want: failover.ErrCandidateIneligible},
		{name: "candidate on old timeline", setup: func(f *fakePatroni) { f.member("pg1").Timeline = 2 },
			want: failover.ErrCandidateIneligible},
		{name: "stale leader view", req: func(r *failover.Request) { r.From = "pg2" }, want: failover.ErrLeaderMismatch},
		{name: "no leader", setup: func(f *fakePatroni) { f.member("pg0").Role = "replica" },
			want: failover.ErrLeaderMismatch},
		{name: "other cluster", req: func(r *failover.Request) { r.Cluster = "prod" }, want: failover.ErrInvalidRequest},
		{name: "no fencing token", req: func(r *failover.Request) { r.FencingToken = 0 }, want: failover.ErrInvalidRequest},
		{name: "no candidate", req: func(r *failover.Request) { r.To = "" }, want: failover.ErrInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, false)
			if tc.setup != nil {
				tc.setup(f)
			}
			req := switchReq()
			if tc.req != nil {
				tc.req(&req)
			}
			res, err := newDriver(t, testConfig(f)).Switchover(context.Background(), req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if res.Outcome != failover.OutcomeNotAttempted || res.Sent {
				t.Fatalf("result = %+v, want not attempted, not sent", res)
			}
			noPost(t, f)
		})
	}
}

func TestStaleFencingToken(t *testing.T) {
	f := newFake(t, false)
	d := newDriver(t, testConfig(f))
	req := switchReq()
	if _, err := d.Switchover(context.Background(), req); err != nil {
		t.Fatalf("first switchover: %v", err)
	}
	req.From, req.To, req.FencingToken = "pg1", "pg0", 41
	_, err := d.Switchover(context.Background(), req)
	if !errors.Is(err, failover.ErrStaleFencingToken) || !errors.Is(err, failover.ErrPrecondition) {
		t.Fatalf("err = %v, want ErrStaleFencingToken", err)
	}
	onePost(t, f)
}

func TestFailover(t *testing.T) {
	req := failover.Request{Cluster: "lab", From: "pg0", To: "pg1", FencingToken: 42, PrimaryConfirmedDead: true}

	t.Run("not confirmed dead", func(t *testing.T) {
		f := newFake(t, false)
		r := req
		r.PrimaryConfirmedDead = false
		_, err := newDriver(t, testConfig(f)).Failover(context.Background(), r)
		if !errors.Is(err, failover.ErrPrimaryAlive) {
			t.Fatalf("err = %v, want ErrPrimaryAlive", err)
		}
		noPost(t, f)
	})
	t.Run("leader still running", func(t *testing.T) {
		f := newFake(t, false)
		_, err := newDriver(t, testConfig(f)).Failover(context.Background(), req)
		if !errors.Is(err, failover.ErrPrimaryAlive) {
			t.Fatalf("err = %v, want ErrPrimaryAlive", err)
		}
		noPost(t, f)
	})
	t.Run("patroni already acted", func(t *testing.T) {
		f := newFake(t, false)
		f.promote("pg2")
		_, err := newDriver(t, testConfig(f)).Failover(context.Background(), req)
		if !errors.Is(err, failover.ErrLeaderMismatch) {
			t.Fatalf("err = %v, want ErrLeaderMismatch", err)
		}
		noPost(t, f)
	})
	t.Run("no leader", func(t *testing.T) {
		f := newFake(t, false)
		f.member("pg0").Role, f.member("pg0").State = "replica", "stopped"
		res, err := newDriver(t, testConfig(f)).Failover(context.Background(), req)
		if err != nil {
			t.Fatalf("Failover: %v", err)
		}
		p := onePost(t, f)
		if p.Path != "/failover" || p.Body["candidate"] != "pg1" || len(p.Body) != 1 {
			t.Fatalf("POST %s %v, want /failover with only the candidate", p.Path, p.Body)
		}
		if res.NewLeader != "pg1" || res.Outcome != failover.OutcomeSucceeded {
			t.Fatalf("result = %+v", res)
		}
	})
}

func TestNotSentWhenCandidateAPIUnreachable(t *testing.T) {
	f := newFake(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/patroni"
	ln.Close()
	f.member("pg1").APIURL = dead
	res, err := newDriver(t, testConfig(f)).Switchover(context.Background(), switchReq())
	if !errors.Is(err, failover.ErrUnavailable) || res.Sent || res.Outcome != failover.OutcomeNotAttempted {
		t.Fatalf("err = %v, result %+v: want ErrUnavailable, not sent", err, res)
	}
	noPost(t, f)

	// PostToEndpoint sends to the endpoint that served the topology instead.
	cfg := testConfig(f)
	cfg.PostToEndpoint = true
	if _, err := newDriver(t, cfg).Switchover(context.Background(), switchReq()); err != nil {
		t.Fatalf("Switchover via endpoint: %v", err)
	}
	onePost(t, f)
}

func TestTopology(t *testing.T) {
	f := newFake(t, false)
	f.member("pg2").Lag = "unknown"
	f.member("pg2").Tags = map[string]any{"nofailover": "true", "clonefrom": true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	cfg := testConfig(f)
	cfg.Endpoints = []string{deadURL, f.URL() + "/"} // first is down: falls through
	top, err := newDriver(t, cfg).Topology(context.Background())
	if err != nil {
		t.Fatalf("Topology: %v", err)
	}
	if top.Source != f.URL() || top.Cluster != "lab" || len(top.Members) != 3 || len(top.Replicas()) != 2 {
		t.Fatalf("topology = %+v", top)
	}
	l, ok := top.Leader()
	if !ok || l.Name != "pg0" || l.LagBytes != 0 || l.Timeline != 3 || l.Port != 5432 || l.Host != "127.0.0.1" {
		t.Fatalf("leader = %+v", l)
	}
	pg2, _ := top.Member("pg2")
	if pg2.LagBytes != failover.LagUnknown || !pg2.NoFailover || pg2.State != "streaming" {
		t.Fatalf("pg2 = %+v", pg2)
	}
	if pg1, _ := top.Member("pg1"); pg1.LagBytes != 0 || pg1.NoFailover || !strings.HasSuffix(pg1.APIURL, "/patroni") {
		t.Fatalf("pg1 = %+v", pg1)
	}
	if s := top.String(); !strings.Contains(s, "pg0=leader/running(tl 3)") || !strings.Contains(s, "pg2=replica/streaming(lag ?)") {
		t.Fatalf("String() = %q", s)
	}

	cfg.Endpoints = []string{deadURL}
	_, err = newDriver(t, cfg).Topology(context.Background())
	if !errors.Is(err, failover.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestTLS(t *testing.T) {
	f := newFake(t, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(f)
	_, err := newDriver(t, cfg).Topology(context.Background())
	if !errors.Is(err, failover.ErrUnavailable) {
		t.Fatalf("unknown CA: err = %v, want ErrUnavailable", err)
	}
	_, err = newDriver(t, cfg).Switchover(context.Background(), switchReq())
	if !errors.Is(err, failover.ErrUnavailable) {
		t.Fatalf("unknown CA: switchover err = %v, want ErrUnavailable", err)
	}

	cfg.TLS = failover.TLSConfig{CAFile: caFile}
	if _, err := newDriver(t, cfg).Switchover(context.Background(), switchReq()); err != nil {
		t.Fatalf("switchover with CA file: %v", err)
	}
	onePost(t, f)

	cfg.TLS = failover.TLSConfig{InsecureSkipVerify: true}
	if _, err := newDriver(t, cfg).Topology(context.Background()); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	if _, err := New(Config{Endpoints: []string{f.URL()}, TLS: failover.TLSConfig{CertFile: "x.pem"}}); err == nil {
		t.Fatal("CertFile without KeyFile accepted")
	}
	if _, err := New(Config{Endpoints: []string{f.URL()}, TLS: failover.TLSConfig{CAFile: "/nonexistent"}}); err == nil {
		t.Fatal("missing CA file accepted")
	}
}

func TestPostReturnsPatroniVerdict(t *testing.T) {
	f := newFake(t, false)
	d := newDriver(t, testConfig(f))
	_, err := d.Post(context.Background(), f.URL(), failover.ActionSwitchover,
		map[string]string{"leader": "pg2", "candidate": "pg1"}, 42)
	var fe *failover.Error
	if !errors.Is(err, failover.ErrLeaderMismatch) || !errors.As(err, &fe) || fe.Status != 412 || !fe.Sent {
		t.Fatalf("err = %#v, want 412 ErrLeaderMismatch", err)
	}
	onePost(t, f)
}

func TestConfig(t *testing.T) {
	for _, eps := range [][]string{nil, {"ftp://x"}, {"http://u:p@host:8008"}, {"://"}} {
		if _, err := New(Config{Endpoints: eps}); err == nil {
			t.Errorf("endpoints %q accepted", eps)
		}
	}
	d, err := New(Config{Endpoints: []string{"http://127.0.0.1:8008/"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.cfg.RequestTimeout < 30*time.Second || d.cfg.Endpoints[0] != "http://127.0.0.1:8008" {
		t.Fatalf("defaults: %+v", d.cfg)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "config", Config{Username: "u", Password: "hunter2"})
	if strings.Contains(buf.String(), "hunter2") || !strings.Contains(buf.String(), `"password_set":true`) {
		t.Fatalf("logged config: %s", buf.String())
	}
}

func TestAPIBase(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.0.0.1:8008/patroni":   "http://10.0.0.1:8008",
		"https://db1:8443/patroni/":      "https://db1:8443",
		"http://h:8008":                  "http://h:8008",
		"http://h:8008/prefix/patroni?x": "http://h:8008/prefix",
	} {
		if got, err := apiBase(in); err != nil || got != want {
			t.Errorf("apiBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := apiBase("not a url"); err == nil {
		t.Error("apiBase accepted a relative path")
	}
}
