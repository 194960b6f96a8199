package steer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/failover/patroni"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/patronilab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/mciv/mciv/steer/routes"
)

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startLab starts a Patroni lab in network namespaces for the test.
func startLab(t testing.TB, ctx context.Context) *patronilab.Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "patroni", "etcd", "ip", "nft", "nsenter", "setpriv")
	testenv.RequireFile(t, "/usr/lib/postgresql/15/bin/postgres", "PostgreSQL 15 (apt-get install postgresql-15)")
	lab, err := patronilab.Start(ctx, patronilab.Options{NetNS: true, FailureLog: tbWriter{t}})
	if err != nil {
		t.Fatalf("patronilab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			lab.DumpLogs(tbWriter{t})
		}
		if err := lab.Stop(); err != nil {
			t.Errorf("lab stop: %v", err)
		}
	})
	return lab
}

// appSQL runs sql with psql inside cgroup dir (the application), against
// addr, and returns the output ("" and the error if it failed).
func appSQL(ctx context.Context, dir, password, host, port, sql string) (string, error) {
	fd, err := syscall.Open(dir, syscall.O_DIRECTORY|syscall.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer syscall.Close(fd)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(qctx, "/usr/lib/postgresql/15/bin/psql", "-X", "-A", "-t", "-q",
		"-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-c", sql)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSWORD=" + password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=3", "LC_ALL=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql %s:%s: %w: %s", host, port, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// steerLab is a Patroni lab in network namespaces, an application cgroup
// steered by a controller and an agent, and the services payments-rw and
// payments-ro.
type steerLab struct {
	lab      *patronilab.Cluster
	dir      string
	js       jetstream.JetStream
	agent    *Agent
	dp       *Datapath
	password string
	members  map[string]string // name -> host:port
	byIP     map[string]string // ip -> name
	rw, ro   string

	// The failover path (startFailover): the actuator's decisions, and
	// the Slack notifier with its fake Slack and notification log.
	decisions chan wire.Action
	lastProbe time.Time // when the last switchover's probes stopped
	slack     *slacktest.Server
	nflog     *nflog.Log
	incidents *slack.Incidents
}

func newSteerLab(t testing.TB, ctx context.Context) *steerLab {
	t.Helper()
	lab := startLab(t, ctx)
	dir := testCgroup(t)
	_, nc, js := startBus(t, ctx)
	s := &steerLab{lab: lab, dir: dir, js: js, members: map[string]string{}, byIP: map[string]string{},
		rw: "127.77.3.1:5432", ro: "127.77.3.2:5432"}
	for _, m := range lab.MemberNames() {
		s.members[m] = lab.PGAddr(m)
		s.byIP[strings.Split(lab.PGAddr(m), ":")[0]] = m
	}
	scope := lab.Scope()
	cfg := Config{
		Agent: true, Controller: true, Cgroup: dir, StatusFile: t.TempDir() + "/steer.json",
		Services: []ServiceConfig{
			{Name: "payments-rw", Address: s.rw, Role: "rw", Clusters: []string{scope}},
			{Name: "payments-ro", Address: s.ro, Role: "ro", Clusters: []string{scope}},
		},
		Clusters:     map[string]ClusterConfig{scope: {Patroni: lab.APIURLs(), Members: s.members}},
		Interval:     yamltime.Duration(200 * time.Millisecond),
		ProbeTimeout: yamltime.Duration(500 * time.Millisecond),
		Hysteresis:   Hysteresis{Margin: 0.5, Hold: yamltime.Duration(2 * time.Second)},
	}
	logger := slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctl, err := NewController(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	dp, err := NewDatapath(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	s.dp = dp
	if s.agent, err = NewAgent(cfg, dp, nil, logger); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go func() { _ = ctl.Run(rctx, nc, js) }()
	go func() { _ = s.agent.Run(rctx, nc, js) }()
	env, err := lab.ClientEnv(lab.MemberNames()[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PGPASSWORD="); ok {
			s.password = v
		}
	}
	s.startFailover(t, ctx, logger)
	return s
}

// query asks svc, from the application's cgroup, which member answered
// and whether it is in recovery ("true"/"false").
func (s *steerLab) query(ctx context.Context, svc string) (member, recovery string, err error) {
	h, p, _ := strings.Cut(svc, ":")
	out, err := appSQL(ctx, s.dir, s.password, h, p, "SELECT host(inet_server_addr()) || ' ' || pg_is_in_recovery()")
	if err != nil {
		return "", "", err
	}
	ip, rec, _ := strings.Cut(out, " ")
	return s.byIP[ip], rec, nil
}

// waitFor polls ok every 50 ms until it holds, failing after limit, and
// returns how long it took.
func waitFor(t testing.TB, ctx context.Context, what string, limit time.Duration, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > limit || ctx.Err() != nil {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// failoverRule is the rule whose firing alert asks the actuator for a
// switchover in the lab.
const failoverRule = "PaymentsLatency"

// evidenceWindow is how far back the actuator counts vantage points: a
// switchover waits for the last one's evidence to age out (a former
// primary's degraded samples would otherwise make it "degraded towards
// other peers", no healthy candidate). 8 s leaves room for the probes'
// psql runs on a loaded host: the actuator re-checks under its lease that
// two other members saw the primary degraded in this window.
const evidenceWindow = 8 * time.Second

// startFailover starts, beside the steering, the parts a switchover goes
// through in production: the failover actuator with its Patroni driver and
// its guards (the alert persisted, two other vantage points see the
// primary degraded, a healthy candidate within lag, its lease, the
// cooldown; no approval), and the Slack notifier (a fake Slack speaking
// Slack's Web API) that posts the alert and puts the audit records of
// mciv.actions.> into the alert's thread.
func (s *steerLab) startFailover(t testing.TB, ctx context.Context, logger *slog.Logger) {
	t.Helper()
	scope := s.lab.Scope()
	leader, err := s.lab.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.lab.ExecSQL(ctx, leader, "CREATE TABLE IF NOT EXISTS mciv_probe(x int); INSERT INTO mciv_probe VALUES (1);"); err != nil {
		t.Fatal(err)
	}
	user, pass := s.lab.APIAuth()
	drv, err := patroni.New(patroni.Config{Cluster: scope, Endpoints: s.lab.APIURLs(), Username: user, Password: pass,
		ConfirmTimeout: 30 * time.Second, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.decisions = make(chan wire.Action, 16)
	act, err := actuator.New(actuator.Options{
		Config: actuator.Config{
			Enabled: true, Rules: map[string]actuator.Policy{failoverRule: {When: actuator.WhenPrimary}},
			Persist: actuator.Duration(time.Second), EvidenceWait: actuator.Duration(5 * time.Second),
			Recheck: actuator.Duration(250 * time.Millisecond), Window: actuator.Duration(evidenceWindow),
			SeenWindow: actuator.Duration(5 * time.Second), MinDegradedBatches: 2,
			Signals:     []actuator.SignalThreshold{{Signal: "pg_query_latency_seconds", Min: 0.25}},
			Cooldown:    actuator.Duration(time.Second),
			MaxLagBytes: 16 << 20,
		},
		JS: s.js, Drivers: map[string]failover.Driver{scope: drv}, Holder: "steer-lab", Logger: logger,
		OnDecision: func(a wire.Action) {
			if a.Decision != actuator.DecisionPendingApproval {
				s.decisions <- a
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- act.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })

	s.slack = slacktest.New(t, "xoxb-steer-lab")
	nlog, err := nflog.Open(ctx, s.js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.nflog = nlog
	s.incidents, err = slack.NewIncidents(slack.IncidentsConfig{
		Config: slack.Config{Token: "xoxb-steer-lab", Channel: "#payments-oncall", APIURL: s.slack.URL(), MaxAttempts: 3},
		Log:    nlog, ChannelRate: 1000, Registry: prometheus.NewRegistry(),
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	tdone := make(chan error, 1)
	go func() { tdone <- s.incidents.RunThreads(rctx, s.js) }()
	t.Cleanup(func() { stop(); <-tdone })
	// Both consumers exist before the first alert.
	for _, c := range []struct{ stream, durable string }{{bus.AlertsStream, actuator.DefaultDurable}, {bus.ActionsStream, slack.ActionsDurable}} {
		waitFor(t, ctx, "consumer "+c.durable, 30*time.Second, func() bool {
			_, err := s.js.Consumer(ctx, c.stream, c.durable)
			return err == nil
		})
	}
}

// probe publishes, every 250 ms until ctx ends, host's view of target as
// a sample batch on host's subject: the latency of a query on target's
// PostgreSQL (over the lab's network), with peer = target's address.
func (s *steerLab) probe(ctx context.Context, wg *sync.WaitGroup, host, target string) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		var seq uint64
		for ctx.Err() == nil {
			start := time.Now()
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := s.lab.ExecSQL(qctx, target, "SELECT count(*) FROM mciv_probe")
			cancel()
			lat := time.Since(start).Seconds()
			if err != nil {
				lat = max(lat, 0.5)
			}
			seq++
			b := &wire.Batch{Cluster: s.lab.Scope(), Host: host, Seq: seq, Start: start, Interval: 250 * time.Millisecond,
				Series: []wire.Series{
					{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1},
					{Signal: "pg_query_latency_seconds", Kind: wire.KindGauge, Value: lat,
						Labels: []wire.Label{{Name: "peer", Value: s.lab.PGAddr(target)}}},
				}}
			_ = s.js.Conn().Publish(wire.SamplesSubject(s.lab.Scope(), host), wire.EncodeBatch(b))
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
}

// publishAlert publishes al on the alerts stream, as the analyzer does.
func (s *steerLab) publishAlert(t testing.TB, ctx context.Context, al *wire.Alert) {
	t.Helper()
	data, err := wire.EncodeAlert(al)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.js.Publish(ctx, wire.AlertSubject(s.lab.Scope(), al.Rule), data, jetstream.WithMsgID(al.MsgID())); err != nil {
		t.Fatal(err)
	}
}

// byAddr returns the member at addr ("" if none).
func (s *steerLab) byAddr(addr netip.AddrPort) string {
	for m, a := range s.members {
		if a == addr.String() {
			return m
		}
	}
	return ""
}

// watched is the first moment a watcher saw what it waited for, on member.
type watched struct {
	member string
	at     time.Time
}

// switchResult is what one switchover through the actuator showed.
type switchResult struct {
	to string
	// route: from the actuator's acted record (written once the
	// switchover is confirmed) to the controller's rw route naming the new
	// primary (negative when its Patroni poll saw the new leader first);
	// connect: to the first new connection to the rw service address that
	// lands on it (pg_is_in_recovery() false).
	route, connect time.Duration
	// kernel and steered: from Patroni's GET /primary first answering 200
	// on the new primary (the earliest a proxy polling it could move) to
	// the kernel's rw route naming it (negative: steering moved first, on
	// Patroni's leader key, while the promotion finished), and to that
	// first new connection.
	kernel, steered time.Duration
	alert           *wire.Alert
	decision        wire.Action
}

// switchover makes the primary slow (a lock on the probe table stalls
// every query touching it), lets each member's probe report its view, and
// fires the alert that asks for failover: the actuator decides with its
// guards and switches over through Patroni. It returns when new
// connections to the rw service reach the new primary.
func (s *steerLab) switchover(t testing.TB, ctx context.Context, leader string) switchResult {
	t.Helper()
	scope := s.lab.Scope()
	if wait := time.Until(s.lastProbe.Add(evidenceWindow + 500*time.Millisecond)); wait > 0 {
		time.Sleep(wait) // the last switchover's evidence ages out
	}
	pctx, stopProbes := context.WithCancel(ctx)
	var probes sync.WaitGroup
	defer func() {
		stopProbes()
		probes.Wait()
		s.lastProbe = time.Now()
	}()
	for _, m := range s.lab.MemberNames() {
		s.probe(pctx, &probes, m, leader) // the primary's own view, and each replica's
	}
	go func() {
		_, _ = s.lab.ExecSQL(pctx, leader, "SET client_connection_check_interval = '100ms'; BEGIN; LOCK TABLE mciv_probe IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;")
	}()
	start := time.Now()
	al := &wire.Alert{
		Fingerprint: fmt.Sprintf("steer-lab-%s-%d", leader, start.UnixNano()), Rule: failoverRule, State: wire.StateFiring,
		Labels: map[string]string{"alertname": failoverRule, "cluster": scope, "host": leader, "severity": "critical"},
		Signal: "pg_query_latency_seconds", Stat: "p99", Value: 1, Baseline: 0.002, Threshold: 0.25,
		StartsAt: start, At: start,
	}
	// The notifier posts the alert (its thread is where the actions go),
	// and the analyzer's alert reaches the actuator.
	if err := s.incidents.Notify(ctx, al); err != nil {
		t.Fatalf("notify: %v", err)
	}
	// Watchers, from now on, of three moments: Patroni's GET /primary
	// first answering 200 on another member (what HAProxy's check of
	// Patroni polls: the earliest it could move its backend), the kernel's
	// route of the rw service address first naming another member (the
	// datapath map, read every 2 ms), and the first new connection to the
	// rw service address from the application's cgroup that lands on a
	// member answering pg_is_in_recovery() = false (psql runs started
	// every 100 ms; the moment is when the first such run returns).
	wctx, stopWatch := context.WithTimeout(ctx, 120*time.Second)
	defer stopWatch()
	launch, stopLaunch := context.WithCancel(wctx)
	defer stopLaunch()
	first := func(every time.Duration, ok func() string) <-chan watched {
		ch := make(chan watched, 1)
		go func() {
			defer close(ch)
			for wctx.Err() == nil {
				if m := ok(); m != "" {
					ch <- watched{m, time.Now()}
					return
				}
				time.Sleep(every)
			}
		}()
		return ch
	}
	primaryAPI := map[string]<-chan watched{}
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	for _, m := range s.lab.MemberNames() {
		if m == leader {
			continue
		}
		url := s.lab.APIURL(m) + "/primary"
		primaryAPI[m] = first(10*time.Millisecond, func() string {
			resp, err := hc.Get(url)
			if err != nil {
				return ""
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
			return ""
		})
	}
	rwAddr := netip.MustParseAddrPort(s.rw)
	kernelRoute := first(2*time.Millisecond, func() string {
		es, err := s.dp.Entries()
		if err != nil {
			return ""
		}
		for _, e := range es {
			if e.Service == rwAddr && len(e.Backends) > 0 {
				if m := s.byAddr(e.Backends[0].Addr); m != leader {
					return m
				}
			}
		}
		return ""
	})
	// A psql run starts every 100 ms, each in its own goroutine: one that
	// hangs on the old primary while it shuts down delays no other.
	steered := make(chan watched, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var once sync.Once
		for {
			go func() {
				m, rec, err := s.query(wctx, s.rw)
				if err == nil && m != leader && m != "" && rec == "false" {
					once.Do(func() { steered <- watched{m, time.Now()}; stopLaunch() })
				}
			}()
			select {
			case <-launch.Done():
				return
			case <-tick.C:
			}
		}
	}()
	s.publishAlert(t, ctx, al)
	var d wire.Action
	select {
	case d = <-s.decisions:
	case <-ctx.Done():
		t.Fatal("the actuator never decided")
	}
	if d.Decision != actuator.DecisionActed || d.Outcome != string(failover.OutcomeSucceeded) || d.Fingerprint != al.Fingerprint {
		t.Fatalf("actuator: %s/%s by %s: %s %v", d.Decision, d.Outcome, d.Safeguard, d.Reason, d.Evidence)
	}
	stopProbes()
	res := switchResult{to: d.To, alert: al, decision: d}
	// d.At: the switchover was confirmed and its record is being written.
	var rw *routes.Route
	waitFor(t, ctx, "the agent's rw route names the new primary", 10*time.Second, func() bool {
		for _, sv := range s.agent.Status().Services {
			if sv.Name == "payments-rw" && sv.Route != nil && sv.Route.Member == d.To {
				rw = sv.Route
				return true
			}
		}
		return false
	})
	res.route = rw.At.Sub(d.At) // the controller's write, on the same clock
	// A measurement only: Patroni's API may be too slow to answer a poll.
	p, measured := <-primaryAPI[d.To]
	k, ok := <-kernelRoute
	if !ok || k.member != d.To {
		t.Fatalf("the kernel's rw route never named the new primary %s (got %+v)", d.To, k)
	}
	var c watched
	select {
	case c = <-steered:
	case <-wctx.Done():
		t.Fatalf("new connections to the rw service never reached the new primary %s within 120 s", d.To)
	}
	if c.member != d.To {
		t.Fatalf("new connections to the rw service reached %s, not the new primary %s", c.member, d.To)
	}
	res.connect = c.at.Sub(d.At)
	if measured {
		res.kernel = k.at.Sub(p.at)
		res.steered = c.at.Sub(p.at)
	} else {
		t.Logf("Patroni's GET /primary on %s never answered 200 to the watcher: not measured", d.To)
	}
	// The alert ends; the old primary rejoins as a replica.
	resolved := *al
	resolved.State, resolved.At, resolved.EndsAt = wire.StateResolved, time.Now(), time.Now()
	s.publishAlert(t, ctx, &resolved)
	return res
}

// steerAudit returns the steer action of service on mciv.actions.> that
// moved it to member, waiting up to 10 s for it.
func (s *steerLab) steerAudit(t testing.TB, ctx context.Context, service, member string) *wire.Action {
	t.Helper()
	cons, err := s.js.OrderedConsumer(ctx, bus.ActionsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.ActionsWildcard}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Until(deadline)))
		if err != nil {
			break
		}
		if a, err := wire.DecodeAction(m.Data()); err == nil && a.Kind == "steer" && a.Evidence["service"] == service && a.To == member {
			return a
		}
	}
	t.Fatalf("no audited route change of %s to %s on %s", service, member, wire.ActionsWildcard)
	return nil
}

// threadReply waits up to 10 s for a reply containing text in the Slack
// thread of the alert with fingerprint fp.
func (s *steerLab) threadReply(t testing.TB, ctx context.Context, fp, text string) slacktest.Message {
	t.Helper()
	keys, err := s.nflog.Groups(ctx, fp)
	if err != nil || len(keys) != 1 {
		t.Fatalf("alert %s has groups %v (%v), want one Slack message", fp, keys, err)
	}
	var got slacktest.Message
	waitFor(t, ctx, fmt.Sprintf("%q in the alert's Slack thread", text), 10*time.Second, func() bool {
		e, _, err := s.nflog.Get(ctx, keys[0])
		if err != nil || e == nil || e.TS == "" {
			return false
		}
		for _, m := range s.slack.Messages() {
			if m.ThreadTS == e.TS && strings.Contains(m.Text, text) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// TestLabSteering runs steering on a Patroni cluster in network
// namespaces: an application in its own cgroup dials the service
// addresses payments-rw and payments-ro. The rw service reaches the
// primary and getpeername shows the service address; a member's own
// address is untouched. Then the primary slows down, the alert asking for
// failover fires, and the actuator (its guards, its lease, the Patroni
// driver) switches over: new connections reach the new primary
// (pg_is_in_recovery() false) with no change to the application, the route
// change is audited on mciv.actions.> tied to the alert and appears in the
// alert's Slack thread, and forged routes are refused. Read-only: the
// spread covers several members, loss injected on one with nftables takes
// it out, and it does not come back at once.
func TestLabSteering(t *testing.T) {
	// The lab lives as long as the test; each part has its own bound below
	// (the read-only part may first wait for other packages' eBPF tests).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := newSteerLab(t, ctx)
	lab, dir, agent, rw, ro, members := s.lab, s.dir, s.agent, s.rw, s.ro, s.members
	query := func(svc string) (string, string, error) { return s.query(ctx, svc) }

	leader, err := lab.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last answer: %s", last)
		}
	}()
	waitFor(t, ctx, "rw service reaches the primary", 30*time.Second, func() bool {
		m, rec, err := query(rw)
		last = fmt.Sprintf("%s %s %v", m, rec, err)
		return err == nil && m == leader && rec == "false"
	})
	// getpeername shows the service address.
	if got := dialFrom(t, ctx, dir, rw, helperNoRead+"=1"); got != "peer="+rw {
		t.Fatalf("getpeername: %q", got)
	}
	// A member's own address is not listed: untouched.
	other := lab.MemberNames()[1]
	h, p, _ := strings.Cut(members[other], ":")
	if out, err := appSQL(ctx, dir, s.password, h, p, "SELECT host(inet_server_addr())"); err != nil || out != h {
		t.Fatalf("unlisted address: %q %v", out, err)
	}

	t.Run("switchover by the actuator", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 150*time.Second)
		defer cancel()
		res := s.switchover(t, ctx, leader)
		t.Logf("to %s: actuator's record → controller's rw route %s, → first new connection on the new primary %s; Patroni /primary 200 → kernel route %s, → first new connection %s",
			res.to, res.route.Round(time.Millisecond), res.connect.Round(time.Millisecond), res.kernel.Round(time.Millisecond), res.steered.Round(time.Millisecond))
		if res.to == leader {
			t.Fatalf("switched over to the old leader %s", leader)
		}
		// The application still sees the service address.
		if got := dialFrom(t, ctx, dir, rw, helperNoRead+"=1"); got != "peer="+rw {
			t.Fatalf("getpeername after switchover: %q", got)
		}
		// The route change is an audited action, tied to the alert...
		want := "new connections to payments-rw now go to " + res.to
		a := s.steerAudit(t, ctx, "payments-rw", res.to)
		if a.Reason != want || a.Fingerprint != res.alert.Fingerprint || a.From != leader || a.Cluster != lab.Scope() {
			t.Fatalf("audit of the route change: %+v", a)
		}
		// ...and a line in the alert's Slack thread, after the actuator's.
		line := s.threadReply(t, ctx, res.alert.Fingerprint, want)
		t.Logf("Slack thread: %s", line.Text)
		s.threadReply(t, ctx, res.alert.Fingerprint, "Switchover acted")
		// Forged routes in the bucket (a replica under the ro role, a
		// backend that is no member) are refused by the agent: new
		// connections keep reaching the new primary.
		kv, err := s.js.KeyValue(ctx, DefaultBucket)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := kv.Get(ctx, "payments-rw")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct {
			route routes.Route
			why   string
		}{
			{routes.Route{V: routes.Version, Service: "payments-rw", Role: routes.ReadOnly, Cluster: lab.Scope(), Member: leader, Addr: members[leader]}, `has role "ro"`},
			{routes.Route{V: routes.Version, Service: "payments-rw", Role: routes.ReadWrite, Cluster: lab.Scope(), Member: "evil", Addr: "127.0.0.1:1"}, `"evil" is not a known member`},
		} {
			data, _ := json.Marshal(f.route)
			if _, err := kv.Put(ctx, "payments-rw", data); err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, "the agent refuses "+f.why, 10*time.Second, func() bool {
				for _, sv := range agent.Status().Services {
					if sv.Name == "payments-rw" && strings.Contains(sv.Refused, f.why) {
						return true
					}
				}
				return false
			})
			if m, rec, err := s.query(ctx, rw); err != nil || m != res.to || rec != "false" {
				t.Fatalf("after a forged route (%s): %s %s %v", f.why, m, rec, err)
			}
		}
		if _, err := kv.Put(ctx, "payments-rw", orig.Value()); err != nil {
			t.Fatal(err)
		}
		// An unlisted member address is still untouched (the member that
		// neither led nor leads: the old primary is restarting).
		var third string
		for _, m := range lab.MemberNames() {
			if m != leader && m != res.to {
				third = m
			}
		}
		h, p, _ := strings.Cut(members[third], ":")
		if out, err := appSQL(ctx, dir, s.password, h, p, "SELECT host(inet_server_addr())"); err != nil || out != h {
			t.Fatalf("unlisted address after switchover: %q %v", out, err)
		}
	})

	t.Run("read-only follows latency", func(t *testing.T) {
		testenv.ExclusiveKernel(t) // the loss below is seen host-wide by eBPF probes
		// Its own bound from here: waiting for the kernel lock (other
		// packages' eBPF tests) does not count against it.
		ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
		query := func(svc string) (string, string, error) { return s.query(ctx, svc) }
		// The ro route spreads over the members within the margin of the
		// best (all three here: one host, the same latency).
		roTargets := func() map[string]bool {
			out := map[string]bool{}
			for _, s := range agent.Status().Services {
				if s.Name == "payments-ro" && s.Route != nil {
					for _, tg := range s.Route.Targets() {
						out[tg.Member] = true
					}
				}
			}
			return out
		}
		waitFor(t, ctx, "ro spread over two or more members", 20*time.Second, func() bool { return len(roTargets()) >= 2 })
		answered := map[string]int{}
		for i := 0; i < 12; i++ {
			m, _, err := query(ro)
			if err != nil {
				t.Fatalf("ro query: %v", err)
			}
			answered[m]++
		}
		if len(answered) < 2 {
			t.Fatalf("12 ro connections all reached %v; the spread is %v", answered, roTargets())
		}
		t.Logf("ro spread %v: connections per member %v", roTargets(), answered)
		var first string
		for m := range roTargets() {
			first = m
			break
		}
		if err := lab.Degrade(ctx, first, 60); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				_ = lab.Heal(context.Background(), first)
			}
		}()
		waitFor(t, ctx, "the lossy member leaves the ro spread", 30*time.Second, func() bool {
			ts := roTargets()
			return len(ts) > 0 && !ts[first]
		})
		// New connections spread over the rest, never the lossy member.
		answered = map[string]int{}
		for i := 0; i < 10; i++ {
			m, _, err := query(ro)
			if err != nil {
				t.Fatalf("ro query after the loss: %v", err)
			}
			answered[m]++
		}
		if answered[first] > 0 {
			t.Fatalf("new ro connections still reach the lossy %s: %v", first, answered)
		}
		if err := lab.Heal(ctx, first); err != nil {
			t.Fatal(err)
		}
		healed = true
		// No flap back at once: it rejoins only after its score has been
		// within the margin for the hold time.
		for i := 0; i < 15; i++ {
			if roTargets()[first] {
				t.Fatalf("%s rejoined the ro spread right after the loss ended: %v", first, roTargets())
			}
			time.Sleep(200 * time.Millisecond)
		}
		st := agent.Status()
		t.Logf("status: nats=%s services=%+v", st.NATS, st.Services)
	})
}

// BenchmarkLabSwitchoverToSteered: one switchover per op through the
// whole failover path (alert, actuator with its guards, Patroni), back
// and forth. It reports, median and worst: from the actuator's acted
// record (written once its driver confirmed the switchover) to the
// controller's rw route (negative: its Patroni poll saw the new leader
// first), and to the first new connection to the rw service address that
// lands on the new primary (negative: before the record); and from
// Patroni's GET /primary first answering 200 on the new primary (what a
// proxy's health check polls) to the kernel's route naming it and to that
// first connection (psql runs started every 100 ms: it includes psql's
// own start-up). HAProxy's usual check of Patroni's API (inter 3s, fall
// 3, rise 2) marks the new primary up 3 s to 6 s after /primary first
// answers 200. Run with -benchtime=5x.
func BenchmarkLabSwitchoverToSteered(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := newSteerLab(b, ctx)
	leader, err := s.lab.Leader(ctx)
	if err != nil {
		b.Fatal(err)
	}
	waitFor(b, ctx, "rw routed", 30*time.Second, func() bool {
		m, rec, err := s.query(ctx, s.rw)
		return err == nil && m == leader && rec == "false"
	})
	var route, conn, kernel, steered []float64
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Let the old primary rejoin as a replica before the next switch.
		if err := s.lab.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		res := s.switchover(b, ctx, leader)
		route = append(route, ms(res.route))
		conn = append(conn, ms(res.connect))
		kernel = append(kernel, ms(res.kernel))
		steered = append(steered, ms(res.steered))
		b.Logf("switchover %d to %s: record→route %s, record→first connection %s, /primary 200→kernel route %s, /primary 200→first connection %s",
			i+1, res.to, res.route.Round(time.Millisecond), res.connect.Round(time.Millisecond),
			res.kernel.Round(time.Millisecond), res.steered.Round(time.Millisecond))
		leader = res.to
	}
	b.StopTimer()
	b.ReportMetric(median(route), "ms-median/record-to-route")
	b.ReportMetric(slicesMax(route), "ms-max/record-to-route")
	b.ReportMetric(median(conn), "ms-median/record-to-steered")
	b.ReportMetric(slicesMax(conn), "ms-max/record-to-steered")
	b.ReportMetric(median(kernel), "ms-median/primary-api-to-kernel-route")
	b.ReportMetric(slicesMax(kernel), "ms-max/primary-api-to-kernel-route")
	b.ReportMetric(median(steered), "ms-median/primary-api-to-steered")
	b.ReportMetric(slicesMax(steered), "ms-max/primary-api-to-steered")
}

func slicesMax(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs[1:] {
		m = max(m, x)
	}
	return m
}
