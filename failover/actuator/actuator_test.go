package actuator

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var bucketSeq atomic.Int64

func bucket() string { return fmt.Sprintf("t%d", bucketSeq.Add(1)) }

func TestActsWhenEverySafeguardHolds(t *testing.T) {
	_, js := startNATS(t)
	h := newHarness(t, js, bucket(), nil)
	h.healthyEvidence()
	got := h.handle(h.alert("db-1", 20*time.Second))

	if got.Decision != DecisionActed || got.Outcome != string(failover.OutcomeSucceeded) {
		t.Fatalf("decision %s/%s (%s): %s", got.Decision, got.Outcome, got.Safeguard, got.Reason)
	}
	sw := h.drv.Switches()
	if len(sw) != 1 || sw[0].From != "db-1" || sw[0].To != "db-2" || sw[0].FencingToken == 0 {
		t.Fatalf("switchovers %+v, want one db-1→db-2 with a token", sw)
	}
	if got.FencingToken != sw[0].FencingToken {
		t.Errorf("audit token %d, driver got %d", got.FencingToken, sw[0].FencingToken)
	}
	want := "switching over payments from db-1 to db-2: p99 latency 12x baseline for 23s, confirmed by db-2, db-3 and patroni"
	if !strings.Contains(got.Reason, "switching over payments from db-1 to db-2: p99 latency 12x baseline for ") ||
		!strings.Contains(got.Reason, "confirmed by db-2 and db-3") {
		t.Errorf("reason %q, want like %q", got.Reason, want)
	}
	if got.Evidence["vantage.db-2"] == "" || got.Evidence["vantage.db-3"] == "" {
		t.Errorf("evidence lacks the vantage points: %v", got.Evidence)
	}
	if a := lastAudit(t, js); a.ID != got.ID || a.Decision != DecisionActed {
		t.Errorf("audit stream has %+v, want %s", a, got.ID)
	}
	cd, rev, err := h.act.Store().Cooldown(context.Background(), testCluster)
	if err != nil || rev == 0 || !cd.Until.Equal(h.clock.Now().Add(DefaultCooldown)) || strconv.FormatUint(cd.FencingToken, 10) != got.Evidence["lease_acquired_rev"] || got.FencingToken <= cd.FencingToken {
		t.Errorf("cooldown %+v rev %d err %v", cd, rev, err)
	}
}

// TestRefusals covers every safeguard that refuses before the driver acts.
func TestRefusals(t *testing.T) {
	_, js := startNATS(t)
	cases := []struct {
		name   string
		cfg    func(*Config)
		setup  func(h *harness)
		alert  func(h *harness) *wire.Alert
		guard  Safeguard
		detail string
	}{
		{
			name: "global pause",
			setup: func(h *harness) {
				h.healthyEvidence()
				if err := h.act.Store().SetPaused(context.Background(), PauseInfo{Paused: true, By: "alice", Reason: "migration"}); err != nil {
					t.Fatal(err)
				}
			},
			guard: GuardPause, detail: "alice",
		},
		{
			name:  "cut off from every host",
			setup: func(h *harness) {},
			guard: GuardCutOff, detail: "cut off",
		},
		{
			name: "every host's batches are stale",
			setup: func(h *harness) {
				h.healthyEvidence()
				h.clock.Advance(DefaultSeenWindow + time.Second)
			},
			guard: GuardCutOff,
		},
		{
			name:  "alert about a replica",
			setup: func(h *harness) { h.healthyEvidence() },
			alert: func(h *harness) *wire.Alert { return h.alert("db-2", 20*time.Second) },
			guard: GuardPrimary, detail: "primary is db-1",
		},
		{
			name: "patroni paused",
			setup: func(h *harness) {
				h.healthyEvidence()
				h.drv.top.Paused = true
			},
			guard: GuardPatroniStop,
		},
		{
			name: "topology unreadable",
			setup: func(h *harness) {
				h.healthyEvidence()
				h.drv.topErr = fmt.Errorf("%w: connection refused", failover.ErrUnavailable)
			},
			guard: GuardTopology,
		},
		{
			name: "one replica cut off: a single vantage point",
			setup: func(h *harness) {
				for i := 0; i < 3; i++ {
					h.batch("db-1")
					h.batch("db-3", primaryAddr)
					h.clock.Advance(time.Second)
				}
			},
			guard: GuardVantage, detail: "only 1 vantage point",
		},
		{
			name: "a single degraded batch is not persistent evidence",
			setup: func(h *harness) {
				h.batch("db-2", primaryAddr)
				h.batch("db-3", primaryAddr)
				for i := 0; i < 3; i++ {
					h.batch("db-1")
					h.batch("db-2")
					h.batch("db-3")
				}
			},
			guard: GuardVantage,
		},
		{
			name: "only the primary's own view",
			setup: func(h *harness) {
				for i := 0; i < 3; i++ {
					h.batch("db-1", "10.0.0.2:5432")
					h.batch("db-2")
					h.batch("db-3")
				}
			},
			guard: GuardVantage,
		},
		{
			name: "load spike on every node",
			setup: func(h *harness) {
				h.healthyEvidence()
				h.act.Track(h.alert("db-2", 20*time.Second))
				h.act.Track(h.alert("db-3", 20*time.Second))
			},
			guard: GuardNotSpecific, detail: "cluster-wide",
		},
		{
			name: "no healthy candidate",
			setup: func(h *harness) {
				h.healthyEvidence()
				h.drv.top.Members[1].NoFailover = true
				h.drv.top.Members[2].LagBytes = 50 << 20
			},
			guard: GuardCandidate, detail: "nofailover",
		},
		{
			name: "candidate degraded by its own signals",
			setup: func(h *harness) {
				for i := 0; i < 3; i++ {
					h.batch("db-1")
					h.batch("db-2", primaryAddr, "10.0.0.9:443")
					h.batch("db-3", primaryAddr)
				}
				h.drv.top.Members[2].NoFailover = true
			},
			guard: GuardCandidate, detail: "degraded towards other peers",
		},
		{
			name: "lease held by another actuator",
			setup: func(h *harness) {
				h.healthyEvidence()
				if _, err := h.act.Store().Acquire(context.Background(), testCluster, LeaseInfo{Holder: "other"}); err != nil {
					t.Fatal(err)
				}
			},
			guard: GuardLease, detail: "other",
		},
		{
			name: "lease too close to expiry by our own clock",
			setup: func(h *harness) {
				h.healthyEvidence()
				h.drv.onTopology = func(n int) {
					if n == 2 { // the re-check under the lease
						h.clock.Advance(DefaultLeaseTTL)
					}
				}
			},
			guard: GuardLease, detail: "too close to expiry",
		},
		{
			name: "the leader changed between check and lease",
			setup: func(h *harness) {
				h.healthyEvidence()
				h.drv.onTopology = func(n int) {
					if n == 2 {
						h.drv.mu.Lock()
						h.drv.top.Members[0].Role, h.drv.top.Members[1].Role = failover.RoleReplica, failover.RoleLeader
						h.drv.mu.Unlock()
					}
				}
			},
			guard: GuardPrimary, detail: "on re-check under the lease",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, js, bucket(), tc.cfg)
			tc.setup(h)
			al := h.alert("db-1", 20*time.Second)
			if tc.alert != nil {
				al = tc.alert(h)
			}
			got := h.handle(al)
			if got.Decision != DecisionRefused || got.Safeguard != string(tc.guard) {
				t.Fatalf("decision %s by %q, want refused by %q: %s", got.Decision, got.Safeguard, tc.guard, got.Reason)
			}
			if !strings.Contains(got.Reason, tc.detail) || !strings.HasPrefix(got.Reason, "not switching over payments from") {
				t.Errorf("reason %q, want it to mention %q", got.Reason, tc.detail)
			}
			if n := len(h.drv.Switches()); n != 0 {
				t.Errorf("%d switchovers, want none", n)
			}
			if a := lastAudit(t, js); a.ID != got.ID || a.Safeguard != string(tc.guard) {
				t.Errorf("audit stream has %s/%s, want %s", a.ID, a.Safeguard, got.ID)
			}
		})
	}
}

func TestCutOffDoesNotAskTheManager(t *testing.T) {
	_, js := startNATS(t)
	h := newHarness(t, js, bucket(), nil)
	got := h.handle(h.alert("db-1", 20*time.Second))
	if got.Safeguard != string(GuardCutOff) || h.drv.topCalls != 0 {
		t.Fatalf("safeguard %s, %d topology reads", got.Safeguard, h.drv.topCalls)
	}
}

func TestPatroniViewIsAVantagePoint(t *testing.T) {
	_, js := startNATS(t)
	h := newHarness(t, js, bucket(), nil)
	for i := 0; i < 3; i++ {
		h.batch("db-2", primaryAddr)
		h.batch("db-3")
	}
	h.drv.top.Members[0].State = "stopping"
	got := h.handle(h.alert("db-1", 20*time.Second))
	if got.Decision != DecisionActed || !strings.Contains(got.Reason, "confirmed by db-2 and patroni") {
		t.Fatalf("%s %s: %s", got.Decision, got.Safeguard, got.Reason)
	}

	// With Patroni's view switched off, the same evidence is one vantage point.
	h2 := newHarness(t, js, bucket(), func(c *Config) { off := false; c.PatroniView = &off })
	for i := 0; i < 3; i++ {
		h2.batch("db-2", primaryAddr)
		h2.batch("db-3")
	}
	h2.drv.top.Members[0].State = "stopping"
	if got := h2.handle(h2.alert("db-1", 20*time.Second)); got.Safeguard != string(GuardVantage) {
		t.Fatalf("without patroni_view: %s %s: %s", got.Decision, got.Safeguard, got.Reason)
	}
}

func TestPersistence(t *testing.T) {
	_, js := startNATS(t)

	t.Run("resolved before persisting", func(t *testing.T) {
		h := newHarness(t, js, bucket(), nil)
		h.healthyEvidence()
		al := h.alert("db-1", 2*time.Second)
		h.act.Track(al)
		done := make(chan wire.Action, 1)
		go func() { done <- h.act.Handle(context.Background(), al) }()
		res := *al
		res.State = wire.StateResolved
		h.act.Track(&res)
		got := <-done
		if got.Safeguard != string(GuardPersistence) || !strings.Contains(got.Reason, "resolved before") {
			t.Fatalf("%s %s: %s", got.Decision, got.Safeguard, got.Reason)
		}
	})
	t.Run("acts once persisted", func(t *testing.T) {
		h := newHarness(t, js, bucket(), nil)
		al := h.alert("db-1", 0)
		h.act.Track(al)
		done := make(chan wire.Action, 1)
		go func() { done <- h.act.Handle(context.Background(), al) }()
		// Evidence keeps coming while the alert persists. Handle may not
		// have started its persistence timer yet when the clock first
		// moves (a fake clock fires only timers that exist), so the clock
		// moves on until Handle returns, within a bounded fake time.
		var got wire.Action
	persist:
		for i := 0; ; i++ {
			if i == 600 {
				t.Fatal("Handle did not return within 600 fake seconds")
			}
			h.batch("db-1")
			h.batch("db-2", primaryAddr)
			h.batch("db-3", primaryAddr)
			h.clock.Advance(time.Second)
			select {
			case got = <-done:
				break persist
			case <-time.After(10 * time.Millisecond):
			}
		}
		if got.Decision != DecisionActed {
			t.Fatalf("%s %s: %s", got.Decision, got.Safeguard, got.Reason)
		}
	})
	t.Run("configured time", func(t *testing.T) {
		h := newHarness(t, js, bucket(), func(c *Config) { c.Persist = Duration(time.Minute) })
		h.healthyEvidence()
		al := h.alert("db-1", 20*time.Second)
		h.act.Track(al)
		done := make(chan wire.Action, 1)
		go func() { done <- h.act.Handle(context.Background(), al) }()
		res := *al
		res.State = wire.StateResolved
		h.act.Track(&res)
		if got := <-done; got.Safeguard != string(GuardPersistence) {
			t.Fatalf("%s %s: %s", got.Decision, got.Safeguard, got.Reason)
		}
	})
}

func TestResolvedDuringApprovalIsNotActedOn(t *testing.T) {
	_, js := startNATS(t)
	h := newHarness(t, js, bucket(), func(c *Config) { c.Rules["pg_latency"] = Policy{When: WhenPrimary, Approval: true} })
	h.healthyEvidence()
	al := h.alert("db-1", 20*time.Second)
	h.act.Track(al)
	done := make(chan wire.Action, 1)
	go func() { done <- h.act.Handle(context.Background(), al) }()
	p := <-h.decs
	if p.Decision != DecisionPendingApproval {
		t.Fatalf("first decision %s", p.Decision)
	}
	res := *al
	res.State = wire.StateResolved
	h.act.Track(&res)
	publishApproval(t, h, wire.Ack{Fingerprint: al.Fingerprint, By: "U123", Nonce: p.Nonce, ID: "resolved"})
	got := <-done
	if got.Safeguard != string(GuardPersistence) || len(h.drv.Switches()) != 0 {
		t.Fatalf("%s %s: %s", got.Decision, got.Safeguard, got.Reason)
	}
}

func TestCooldown(t *testing.T) {
	_, js := startNATS(t)
	b := bucket()
	h := newHarness(t, js, b, nil)
	h.healthyEvidence()
	if got := h.handle(h.alert("db-1", 20*time.Second)); got.Decision != DecisionActed {
		t.Fatalf("first: %s %s", got.Decision, got.Reason)
	}
	// A second fault ten minutes later, seen by a new actuator (a restart):
	// the cooldown lives in KV.
	h2 := newHarness(t, js, b, nil)
	h2.clock.Advance(10 * time.Minute)
	h2.healthyEvidence()
	got := h2.handle(h2.alert("db-1", 20*time.Second))
	if got.Safeguard != string(GuardCooldown) || len(h2.drv.Switches()) != 0 {
		t.Fatalf("second inside the cooldown: %s %s: %s", got.Decision, got.Safeguard, got.Reason)
	}
	// After the cooldown, it may act again.
	h2.clock.Advance(DefaultCooldown)
	h2.healthyEvidence()
	if got := h2.handle(h2.alert("db-1", 20*time.Second)); got.Decision != DecisionActed {
		t.Fatalf("after the cooldown: %s %s: %s", got.Decision, got.Safeguard, got.Reason)
	}
}

func TestDryRun(t *testing.T) {
	_, js := startNATS(t)
	for name, mut := range map[string]func(*Config){
		"global":   func(c *Config) { c.DryRun = true },
		"per rule": func(c *Config) { c.Rules["pg_latency"] = Policy{When: WhenPrimary, DryRun: true} },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, js, bucket(), mut)
			h.healthyEvidence()
			got := h.handle(h.alert("db-1", 20*time.Second))
			if got.Decision != DecisionDryRun || len(h.drv.Switches()) != 0 ||
				!strings.HasPrefix(got.Reason, "dry run: would switch over payments from db-1 to db-2") {
				t.Fatalf("%s %s: %s", got.Decision, got.Safeguard, got.Reason)
			}
			if _, rev, _ := h.act.Store().Cooldown(context.Background(), testCluster); rev != 0 {
				t.Errorf("a dry run started a cooldown")
			}
		})
	}
}

func TestApproval(t *testing.T) {
	_, js := startNATS(t)
	approval := func(c *Config) { c.Rules["pg_latency"] = Policy{When: WhenPrimary, Approval: true} }

	t.Run("approved", func(t *testing.T) {
		h := newHarness(t, js, bucket(), approval)
		h.healthyEvidence()
		al := h.alert("db-1", 20*time.Second)
		h.act.Track(al)
		done := make(chan wire.Action, 1)
		go func() { done <- h.act.Handle(context.Background(), al) }()
		pending := <-h.decs
		if pending.Decision != DecisionPendingApproval {
			t.Fatalf("first decision %s, want pending_approval", pending.Decision)
		}
		// Someone else's approval does not count.
		publishAck(t, h, "fp-other", wire.AckApprove)
		publishAck(t, h, al.Fingerprint, wire.AckAcknowledge)
		publishApproval(t, h, wire.Ack{Fingerprint: al.Fingerprint, By: "U123", Nonce: pending.Nonce, ID: "ok"})
		got := <-done
		if got.Decision != DecisionActed || got.Evidence["approved_by"] != "U123 via slack" {
			t.Fatalf("%s %s: %s %v", got.Decision, got.Safeguard, got.Reason, got.Evidence)
		}
	})
	t.Run("timed out", func(t *testing.T) {
		h := newHarness(t, js, bucket(), approval)
		h.healthyEvidence()
		al := h.alert("db-1", 20*time.Second)
		h.act.Track(al)
		done := make(chan wire.Action, 1)
		go func() { done <- h.act.Handle(context.Background(), al) }()
		if p := <-h.decs; p.Decision != DecisionPendingApproval {
			t.Fatalf("first decision %s", p.Decision)
		}
		h.clock.Advance(DefaultApprovalTimeout)
		got := <-done
		if got.Safeguard != string(GuardApproval) || len(h.drv.Switches()) != 0 {
			t.Fatalf("%s %s: %s", got.Decision, got.Safeguard, got.Reason)
		}
	})
}

// publishApproval publishes an approve Ack like the Slack button's: a the
// given fields, cluster, via slack, now.
func publishApproval(t *testing.T, h *harness, a wire.Ack) {
	t.Helper()
	a.Cluster, a.Action, a.Via = testCluster, wire.AckApprove, "slack"
	if a.At.IsZero() {
		a.At = h.clock.Now()
	}
	data, err := wire.EncodeAck(&a)
	if err != nil {
		t.Fatal(err)
	}
	js := h.js
	if h.ackJS != nil {
		js = h.ackJS
	}
	m := &nats.Msg{Subject: wire.AckSubject(testCluster), Data: data}
	if err := h.signer.Sign(m); err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), m, jetstream.WithMsgID(a.ID)); err != nil {
		t.Fatal(err)
	}
}

func publishAck(t *testing.T, h *harness, fp string, action wire.AckAction) {
	t.Helper()
	data, err := wire.EncodeAck(&wire.Ack{Fingerprint: fp, Cluster: testCluster, Action: action, By: "U123", Via: "slack",
		At: h.clock.Now(), ID: fp + string(action)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.Publish(context.Background(), wire.AckSubject(testCluster), data); err != nil {
		t.Fatal(err)
	}
}

func TestDriverOutcomes(t *testing.T) {
	_, js := startNATS(t)
	cases := []struct {
		name         string
		err          error
		decision     string
		outcome      failover.Outcome
		keepCooldown bool
	}{
		{"412", &failover.Error{Driver: "fake", Kind: failover.ErrCandidateIneligible, Status: 412, Message: "no good candidates"},
			DecisionRefused, failover.OutcomeNotAttempted, false},
		{"401", &failover.Error{Driver: "fake", Kind: failover.ErrAuth, Status: 401}, DecisionRefused, failover.OutcomeNotAttempted, false},
		{"503 failed", &failover.Error{Driver: "fake", Kind: failover.ErrFailed, Status: 503, Sent: true}, DecisionActed, failover.OutcomeFailed, true},
		{"timeout", &failover.Error{Driver: "fake", Kind: failover.ErrUnknownOutcome, Err: failover.ErrTimeout, Sent: true},
			DecisionActed, failover.OutcomeUnknown, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, js, bucket(), nil)
			h.drv.onSwitch = func(req failover.Request) (failover.Result, error) {
				return failover.Result{Driver: "fake", To: req.To}, tc.err
			}
			h.healthyEvidence()
			got := h.handle(h.alert("db-1", 20*time.Second))
			if got.Decision != tc.decision || got.Outcome != string(tc.outcome) || got.Safeguard != string(GuardDriver) {
				t.Fatalf("%s/%s by %s, want %s/%s: %s", got.Decision, got.Outcome, got.Safeguard, tc.decision, tc.outcome, got.Reason)
			}
			_, rev, _ := h.act.Store().Cooldown(context.Background(), testCluster)
			if (rev != 0) != tc.keepCooldown {
				t.Errorf("cooldown revision %d, want kept=%v", rev, tc.keepCooldown)
			}
			// Never a second POST for the same fault.
			h.healthyEvidence()
			again := h.handle(h.alert("db-1", 20*time.Second))
			if tc.keepCooldown && (again.Safeguard != string(GuardCooldown) || len(h.drv.Switches()) != 1) {
				t.Errorf("after an uncertain outcome: %s %s, %d switchovers", again.Decision, again.Safeguard, len(h.drv.Switches()))
			}
		})
	}
}

// TestTwoActuators: while A holds the lease (blocked in its re-check), B
// decides on the same alert and must refuse.
func TestTwoActuators(t *testing.T) {
	_, js := startNATS(t)
	b := bucket()
	a := newHarness(t, js, b, nil)
	bb := newHarness(t, js, b, nil)
	a.healthyEvidence()
	bb.healthyEvidence()
	var bDecision wire.Action
	a.drv.onTopology = func(n int) {
		if n == 2 { // A holds the lease now
			bDecision = bb.handle(bb.alert("db-1", 20*time.Second))
		}
	}
	got := a.handle(a.alert("db-1", 20*time.Second))
	if got.Decision != DecisionActed {
		t.Fatalf("A: %s %s: %s", got.Decision, got.Safeguard, got.Reason)
	}
	if bDecision.Safeguard != string(GuardLease) || len(bb.drv.Switches()) != 0 {
		t.Fatalf("B: %s %s: %s", bDecision.Decision, bDecision.Safeguard, bDecision.Reason)
	}
	// Afterwards, B is held back by the cooldown A started.
	bb.healthyEvidence()
	if again := bb.handle(bb.alert("db-1", 20*time.Second)); again.Safeguard != string(GuardCooldown) {
		t.Fatalf("B later: %s %s", again.Decision, again.Safeguard)
	}
}

// TestSetRules: a reload of the analyzer's rules changes which alerts the
// actuator acts on, without a restart.
func TestSetRules(t *testing.T) {
	_, js := startNATS(t)
	h := newHarness(t, js, bucket(), func(c *Config) { c.Rules = map[string]Policy{} })
	h.healthyEvidence()
	if h.act.Track(h.alert("db-1", 20*time.Second)) {
		t.Fatal("an alert of a rule that asks for nothing is tracked")
	}
	h.act.SetRules(map[string]Policy{"pg_latency": {When: WhenPrimary, DryRun: true}})
	got := h.handle(h.alert("db-1", 20*time.Second))
	if got.Decision != DecisionDryRun {
		t.Fatalf("after SetRules: decision %s by %s: %s", got.Decision, got.Safeguard, got.Reason)
	}
	if len(h.drv.Switches()) != 0 {
		t.Errorf("dry run switched over: %+v", h.drv.Switches())
	}
	h.act.SetRules(nil)
	if h.act.Track(h.alert("db-1", 20*time.Second)) {
		t.Error("an alert of a rule removed by SetRules is still tracked")
	}
}

// TestCrashDuringSwitchover: an actuator dies while the driver call is in
// flight (Patroni may be switching over or not). A restarted actuator on
// the same KV state must not call the driver again for the same fault:
// the cooldown was started before the call.
func TestCrashDuringSwitchover(t *testing.T) {
	_, js := startNATS(t)
	b := bucket()
	first := newHarness(t, js, b, nil)
	first.healthyEvidence()
	inCall, release := make(chan struct{}), make(chan struct{})
	first.drv.onSwitch = func(req failover.Request) (failover.Result, error) {
		close(inCall)
		<-release // the process is gone: the call never returns
		return failover.Result{}, context.Canceled
	}
	al := first.alert("db-1", 20*time.Second)
	if !first.act.Track(al) {
		t.Fatal("alert not tracked")
	}
	crashed := make(chan struct{})
	go func() {
		defer close(crashed)
		first.act.Handle(context.Background(), al)
	}()
	t.Cleanup(func() { close(release); <-crashed })
	<-inCall

	restarted := newHarness(t, js, b, nil)
	restarted.healthyEvidence()
	got := restarted.handle(restarted.alert("db-1", 20*time.Second))
	// The cooldown, not only the lease: the lease expires, the cooldown
	// lasts its 30 minutes.
	if got.Decision != DecisionRefused || got.Safeguard != string(GuardCooldown) {
		t.Fatalf("restarted actuator: %s by %s: %s", got.Decision, got.Safeguard, got.Reason)
	}
	if n := len(restarted.drv.Switches()); n != 0 {
		t.Fatalf("restarted actuator called the driver %d times", n)
	}
	t.Logf("restarted actuator refused: %s", got.Reason)
}

// TestAlertsAckWait checks that an alert a crashed replica swallowed goes
// to another well inside the lease, and never later than 30 s.
func TestAlertsAckWait(t *testing.T) {
	for _, c := range []struct{ lease, want time.Duration }{
		{DefaultLeaseTTL, 30 * time.Second},
		{10 * time.Second, 2500 * time.Millisecond},
		{time.Hour, 30 * time.Second},
	} {
		if got := alertsAckWait(c.lease); got != c.want {
			t.Errorf("lease %s: AckWait %s, want %s", c.lease, got, c.want)
		}
	}
}
