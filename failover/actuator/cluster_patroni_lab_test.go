package actuator

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/patroni"
	"github.com/mciv/mciv/internal/lab/patronilab"
)

// realPatroni is a patronilab cluster (Patroni, etcd, PostgreSQL) as a
// labPatroni: every actuator reaches the leader's REST API through a
// proxy of its own, which can "kill" it after Patroni answered a POST.
type realPatroni struct {
	lab  *patronilab.Cluster
	top  failover.Driver // reads the topology for the feed and the test
	quit chan struct{}
	once sync.Once

	mu    sync.Mutex
	posts []string // who sent each POST /switchover Patroni accepted
}

func newRealPatroni(t *testing.T, lab *patronilab.Cluster) *realPatroni {
	t.Helper()
	user, pass := lab.APIAuth()
	drv, err := patroni.New(patroni.Config{Cluster: lab.Scope(), Endpoints: lab.APIURLs(), Username: user, Password: pass,
		TopologyTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &realPatroni{lab: lab, top: drv, quit: make(chan struct{})}
}

func (r *realPatroni) Scope() string   { return r.lab.Scope() }
func (r *realPatroni) Hosts() []string { return r.lab.MemberNames() }
func (r *realPatroni) stop()           { r.once.Do(func() { close(r.quit) }) }

func (r *realPatroni) leader() (failover.Member, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	top, err := r.top.Topology(ctx)
	if err != nil {
		return failover.Member{}, false
	}
	return top.Leader()
}

func (r *realPatroni) Leader() string {
	l, _ := r.leader()
	return l.Name
}

func (r *realPatroni) LeaderAddr() string {
	l, ok := r.leader()
	if !ok {
		return ""
	}
	return joinHostPort(l.Host, l.Port)
}

// Posts returns who sent the POSTs Patroni accepted.
func (r *realPatroni) Posts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.posts...)
}

// proxyEndpoint forwards an actuator's requests to the leader's API.
type proxyEndpoint struct {
	name string
	r    *realPatroni
	srv  *httptest.Server

	endpointFault // the hook runs after Patroni accepted a POST /switchover
}

func (r *realPatroni) endpoint(t *testing.T, name string) labEndpoint {
	t.Helper()
	e := &proxyEndpoint{name: name, r: r, endpointFault: endpointFault{quit: r.quit}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			base := r.lab.APIURLs()[0]
			if l := r.Leader(); l != "" {
				base = r.lab.APIURL(l)
			}
			u, _ := url.Parse(base)
			pr.SetURL(u)
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodPost || resp.Request.URL.Path != "/switchover" || resp.StatusCode != http.StatusOK {
				return nil
			}
			r.mu.Lock()
			r.posts = append(r.posts, name)
			r.mu.Unlock()
			if e.switched(resp.Request) {
				return errors.New("the actuator is dead")
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if e.hangIfDead(req) {
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(func() {
		r.stop()
		e.srv.Close()
	})
	return e
}

func (e *proxyEndpoint) driver(t *testing.T) failover.Driver {
	t.Helper()
	user, pass := e.r.lab.APIAuth()
	d, err := patroni.New(patroni.Config{Cluster: e.r.lab.Scope(), Endpoints: []string{e.srv.URL}, Username: user, Password: pass,
		PostToEndpoint: true, ConfirmTimeout: 30 * time.Second, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestActuatorReplicasPatroniLab runs two actuator replicas on a
// three-node cluster of nats-server processes before a real Patroni
// cluster (etcd, PostgreSQL 15): the replica whose POST /switchover
// Patroni accepted crashes before it reads the answer. Patroni switches
// over once (the timeline moves by one), and the surviving replica,
// alerted on the new leader, refuses by the dead one's cooldown.
// MCIV_FLEET_LAB=0 skips it.
func TestActuatorReplicasPatroniLab(t *testing.T) {
	if os.Getenv("MCIV_FLEET_LAB") == "0" || testing.Short() {
		t.Skip("MCIV_FLEET_LAB=0 or -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lab := startLab(t, ctx)
	cl, js := startClusterLab(t, ctx)
	rp := newRealPatroni(t, lab)
	old, ok := rp.leader()
	if !ok {
		t.Fatal("no leader")
	}
	// A real switchover takes seconds: a lease that outlives it (the
	// test does not wait for it to expire).
	p := newPairLab(t, ctx, cl, js, rp, func(c *Config) { c.LeaseTTL = Duration(40 * time.Second) })
	awaitCrash := p.crashFirstToSwitch()
	first := p.alertLeader()
	dead := awaitCrash()
	t.Logf("Patroni accepted %s's switchover of %s for %s; it crashed before the answer", dead.name, old.Name, first.Fingerprint)
	// Patroni completes it without the dead actuator.
	waitUntil(t, ctx, "new leader", func() bool {
		l, ok := rp.leader()
		return ok && l.Name != old.Name && l.State == "running"
	})
	if err := lab.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitWindow()
	second := p.alertLeader()
	d := p.next(second.Fingerprint)
	if d.by == dead.name {
		t.Fatal("decision by the dead actuator")
	}
	requireCooldownBy(t, d, first.Fingerprint)
	if a := lastAuditOf(t, js, p.scope); a.ID != d.act.ID {
		t.Errorf("audit stream has %s, want %s", a.ID, d.act.ID)
	}
	now, ok := rp.leader()
	if posts := rp.Posts(); len(posts) != 1 || !ok || now.Timeline != old.Timeline+1 {
		t.Fatalf("POSTs accepted %v; timeline %d → %d", posts, old.Timeline, now.Timeline)
	}
	t.Logf("leader %s → %s, timeline %d → %d; survivor: %s", old.Name, now.Name, old.Timeline, now.Timeline, d.act.Reason)
}
