package steer

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/patroni"
	"github.com/mciv/mciv/internal/lab/patronilab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/nats-io/nats.go/jetstream"
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
	password string
	members  map[string]string // name -> host:port
	byIP     map[string]string // ip -> name
	rw, ro   string
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

// switchover switches the lab from leader to cand with the actuator's
// Patroni driver, publishes the actuator's audit record, and returns the
// time from the completed switchover to the first new connection to the
// rw service that lands on the new primary.
func (s *steerLab) switchover(t testing.TB, ctx context.Context, leader, cand string) time.Duration {
	t.Helper()
	scope := s.lab.Scope()
	user, pass := s.lab.APIAuth()
	drv, err := patroni.New(patroni.Config{Cluster: scope, Endpoints: s.lab.APIURLs(), Username: user, Password: pass,
		ConfirmTimeout: 30 * time.Second, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, err := drv.Switchover(ctx, failover.Request{Cluster: scope, From: leader, To: cand, FencingToken: uint64(time.Now().UnixNano()), Reason: "steer lab"})
	if err != nil {
		t.Fatalf("switchover: %v", err)
	}
	done := time.Now()
	act := &wire.Action{ID: fmt.Sprintf("lab-sw-%d", done.UnixNano()), Cluster: scope, Kind: "switchover", Decision: "acted",
		Outcome: string(res.Outcome), From: leader, To: cand, Evidence: map[string]string{"new_leader": res.NewLeader}, At: done}
	data, _ := wire.EncodeAction(act)
	if _, err := s.js.Publish(ctx, wire.ActionSubject(scope), data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "new connections reach the new primary", 20*time.Second, func() bool {
		m, rec, err := s.query(ctx, s.rw)
		return err == nil && m == cand && rec == "false"
	})
	return time.Since(done)
}

func TestLabSteering(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
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

	t.Run("switchover", func(t *testing.T) {
		var cand string
		for _, m := range lab.MemberNames() {
			if m != leader {
				cand = m
				break
			}
		}
		took := s.switchover(t, ctx, leader, cand)
		t.Logf("switchover completed → first new connection on the new primary %s: %s", cand, took.Round(time.Millisecond))
		if got := dialFrom(t, ctx, dir, rw, helperNoRead+"=1"); got != "peer="+rw {
			t.Fatalf("getpeername after switchover: %q", got)
		}
	})

	t.Run("read-only follows latency", func(t *testing.T) {
		testenv.ExclusiveKernel(t) // the loss below is seen host-wide by eBPF probes
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

// BenchmarkLabSwitchoverToSteered: time from a completed switchover (the
// Patroni driver returned) to the first new connection to the rw service
// address that lands on the new primary; one switchover per op, back and
// forth. HAProxy's usual health check (inter 3s, fall 3, rise 2) takes
// 3 s to 9 s to move a backend after the same event.
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
	var took []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var cand string
		for _, m := range s.lab.MemberNames() {
			if m != leader {
				cand = m
				break
			}
		}
		// Let the old primary rejoin as a replica before the next switch.
		if err := s.lab.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		took = append(took, float64(s.switchover(b, ctx, leader, cand).Milliseconds()))
		leader = cand
	}
	b.StopTimer()
	b.ReportMetric(median(took), "ms-median/switchover-to-steered")
	b.ReportMetric(slicesMax(took), "ms-max/switchover-to-steered")
}

func slicesMax(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
