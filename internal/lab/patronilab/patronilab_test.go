package patronilab_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/patroni"
	"github.com/mciv/mciv/internal/lab/patronilab"
	"github.com/mciv/mciv/internal/lab/testenv"
)

// testWriter sends log output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startLab starts a 3-node lab and registers its cleanup.
func startLab(t *testing.T, ctx context.Context) *patronilab.Cluster {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "patroni", "etcd")
	testenv.RequireFile(t, "/usr/lib/postgresql/15/bin/postgres", "PostgreSQL 15 (apt-get install postgresql-15)")
	start := time.Now()
	lab, err := patronilab.Start(ctx, patronilab.Options{
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		FailureLog: testWriter{t},
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("lab ready in %s at %s (members %v)", time.Since(start).Round(time.Millisecond), lab.Dir(), lab.MemberNames())
	t.Cleanup(func() {
		if t.Failed() {
			lab.DumpLogs(testWriter{t})
		}
		if err := lab.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return lab
}

func TestSwitchoverOnRealPatroni(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Second)
	defer cancel()
	lab := startLab(t, ctx)

	user, pass := lab.APIAuth()
	drv, err := patroni.New(patroni.Config{
		Cluster:        lab.Scope(),
		Endpoints:      lab.APIURLs(),
		Username:       user,
		Password:       pass,
		ConfirmTimeout: 30 * time.Second,
		PollInterval:   100 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}

	top, err := drv.Topology(ctx)
	if err != nil {
		t.Fatalf("Topology: %v", err)
	}
	t.Logf("topology: %s", top)
	leader, ok := top.Leader()
	if !ok || !leader.Running() || len(top.Members) != 3 || top.Paused {
		t.Fatalf("want 1 running leader among 3 members, unpaused: %s", top)
	}
	reps := top.Replicas()
	if len(reps) != 2 {
		t.Fatalf("want 2 replicas: %s", top)
	}
	for _, r := range reps {
		if !r.Running() || r.Role != failover.RoleReplica || r.LagBytes == failover.LagUnknown {
			t.Fatalf("replica %+v not healthy", r)
		}
		if r.APIURL == "" || r.Port != lab.PGPort(r.Name) {
			t.Fatalf("replica %+v: api_url or port do not match the lab", r)
		}
	}

	// A write on the leader reaches the replicas.
	if _, err := lab.ExecSQL(ctx, leader.Name, "CREATE TABLE lab_probe (v int); INSERT INTO lab_probe VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	candidate := reps[0].Name
	waitRow(t, ctx, lab, candidate)

	// A stale view of the leader: refused locally, nothing sent.
	stale := failover.Request{Cluster: lab.Scope(), From: candidate, To: reps[1].Name, FencingToken: 1, Reason: "test"}
	if _, err := drv.Switchover(ctx, stale); !errors.Is(err, failover.ErrLeaderMismatch) {
		t.Fatalf("stale leader: err = %v, want ErrLeaderMismatch", err)
	}
	// The same sent raw: Patroni's own 412.
	msg, err := drv.Post(ctx, lab.APIURL(candidate), failover.ActionSwitchover,
		map[string]string{"leader": candidate, "candidate": reps[1].Name}, 1)
	var fe *failover.Error
	if !errors.Is(err, failover.ErrPrecondition) || !errors.Is(err, failover.ErrLeaderMismatch) ||
		!errors.As(err, &fe) || fe.Status != 412 {
		t.Fatalf("wrong leader name: msg %q err %v, want Patroni's 412 precondition error", msg, err)
	}
	t.Logf("wrong leader name: %v", err)
	if l, err := lab.Leader(ctx); err != nil || l != leader.Name {
		t.Fatalf("leader after refused switchover = %q, %v; want %q unchanged", l, err, leader.Name)
	}

	// The real switchover.
	start := time.Now()
	res, err := drv.Switchover(ctx, failover.Request{
		Cluster: lab.Scope(), From: leader.Name, To: candidate, FencingToken: 2, Reason: "patronilab test",
		MaxLagBytes: 1 << 20,
	})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Switchover %s -> %s: %v (result %+v)", leader.Name, candidate, err, res)
	}
	t.Logf("switchover %s -> %s took %s (outcome %s, detail %q)", leader.Name, candidate,
		took.Round(time.Millisecond), res.Outcome, res.Detail)
	t.Logf("topology after: %s", res.After)
	if res.NewLeader != candidate || res.Outcome != failover.OutcomeSucceeded {
		t.Fatalf("result = %+v", res)
	}
	if l, err := lab.Leader(ctx); err != nil || l != candidate {
		t.Fatalf("Patroni reports leader %q, %v; want %q", l, err, candidate)
	}
	nl, _ := res.After.Leader()
	if ol, _ := res.Before.Leader(); nl.Timeline <= ol.Timeline {
		t.Fatalf("timeline did not advance: before %d after %d", ol.Timeline, nl.Timeline)
	}
	// The new leader takes writes.
	if out, err := lab.ExecSQL(ctx, candidate, "SELECT pg_is_in_recovery()"); err != nil || out != "f" {
		t.Fatalf("pg_is_in_recovery on the new leader = %q, %v", out, err)
	}
	if _, err := lab.ExecSQL(ctx, candidate, "INSERT INTO lab_probe VALUES (8)"); err != nil {
		t.Fatal(err)
	}

	// Fault injection: the new leader dies. Until its leader key expires
	// Patroni still shows it holding the lock and running, so a failover
	// is refused; once Patroni's own leader race has promoted someone, a
	// failover is refused as "already moved". Neither sends anything.
	killedAt := time.Now()
	if err := lab.StopMember(candidate, patronilab.Kill); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.ExecSQL(ctx, candidate, "SELECT 1"); err == nil {
		t.Fatalf("%s still answers after StopMember(Kill)", candidate)
	}
	dead := failover.Request{Cluster: lab.Scope(), From: candidate, To: reps[1].Name, FencingToken: 3,
		Reason: "primary dead", PrimaryConfirmedDead: true}
	if res, err := drv.Failover(ctx, dead); !errors.Is(err, failover.ErrPrimaryAlive) || res.Sent {
		t.Logf("failover right after the kill: %v (the leader key may already have expired)", err)
		if !errors.Is(err, failover.ErrPrecondition) || res.Sent {
			t.Fatalf("failover right after the kill: err %v sent %v, want a refusal", err, res.Sent)
		}
	}
	var patroniLeader string
	for patroniLeader == "" || patroniLeader == candidate {
		select {
		case <-ctx.Done():
			t.Fatalf("Patroni did not replace the killed leader %s: %v", candidate, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		patroniLeader, _ = lab.Leader(ctx)
	}
	t.Logf("Patroni's own failover after killing %s: %s leads after %s", candidate, patroniLeader,
		time.Since(killedAt).Round(time.Millisecond))
	dead.To = leader.Name
	if dead.To == patroniLeader {
		dead.To = reps[1].Name
	}
	if res, err := drv.Failover(ctx, dead); !errors.Is(err, failover.ErrLeaderMismatch) || res.Sent {
		t.Fatalf("failover after Patroni acted: err %v sent %v, want ErrLeaderMismatch, nothing sent", err, res.Sent)
	}
}

// waitRow waits until the probe row replicated to member.
func waitRow(t *testing.T, ctx context.Context, lab *patronilab.Cluster, member string) {
	t.Helper()
	for {
		out, err := lab.ExecSQL(ctx, member, "SELECT v FROM lab_probe")
		if err == nil && out == "7" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("row not replicated to %s: %q, %v", member, out, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
