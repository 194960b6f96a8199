package actuator

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestApprovalRefusals: a hand-published approval (no nonce), a replay of
// an earlier request's approval, an unlisted user's press and a stale press
// are each refused, counted and audited; the listed approver's press of
// this request acts.
func TestApprovalRefusals(t *testing.T) {
	_, js := startNATS(t)
	h := newHarness(t, js, bucket(), func(c *Config) { c.Rules["pg_latency"] = Policy{When: WhenPrimary, Approval: true} })
	testApprovalRefusals(t, h)
}

// TestSecurityApprovalRefusals is TestApprovalRefusals on a server that
// enforces the shipped permissions: the actuator runs on its own
// credentials and verifies signatures, approvals come from the notifier's
// credentials, signed by it.
func TestSecurityApprovalRefusals(t *testing.T) {
	sb := startSecureNATS(t)
	h := newHarnessOpts(t, sb.js(t, auth.Actuator, "mon-1"), DefaultKVBucket, func(c *Config) {
		c.Rules["pg_latency"] = Policy{When: WhenPrimary, Approval: true}
	}, func(o *Options) { o.Verifier, o.Secured = sb.verifier(t), true })
	h.ackJS = sb.js(t, auth.Notifier, "mon-1")
	h.signer = sb.signer(t, auth.Notifier, testCluster, "mon-1")
	testApprovalRefusals(t, h)
}

func testApprovalRefusals(t *testing.T, h *harness) {
	t.Helper()
	h.healthyEvidence()
	al := h.alert("db-1", 20*time.Second)
	h.act.Track(al)
	done := make(chan wire.Action, 1)
	go func() { done <- h.act.Handle(context.Background(), al) }()
	pending := <-h.decs
	if pending.Decision != DecisionPendingApproval || len(pending.Nonce) != 32 {
		t.Fatalf("first decision %s with nonce %q", pending.Decision, pending.Nonce)
	}
	for _, tc := range []struct {
		ack    wire.Ack
		reason string
	}{
		{wire.Ack{Fingerprint: al.Fingerprint, By: "U123", ID: "hand"}, RefusedNonce},
		{wire.Ack{Fingerprint: al.Fingerprint, By: "U123", Nonce: "0123456789abcdef0123456789abcdef", ID: "replay"}, RefusedNonce},
		{wire.Ack{Fingerprint: al.Fingerprint, By: "U0MALLORY", Nonce: pending.Nonce, ID: "unlisted"}, RefusedApprover},
		{wire.Ack{Fingerprint: al.Fingerprint, By: "U123", Nonce: pending.Nonce, ID: "stale", At: h.clock.Now().Add(-time.Hour)}, RefusedAge},
	} {
		publishApproval(t, h, tc.ack)
		audit := <-h.decs
		if audit.Decision != DecisionApprovalRefused || audit.Evidence["reason"] != tc.reason || audit.Evidence["by"] != tc.ack.By {
			t.Fatalf("%s: audit %+v, want %s refused", tc.ack.ID, audit, tc.reason)
		}
		if got := h.act.Refused(tc.reason); got < 1 {
			t.Errorf("%s: not counted (%v)", tc.ack.ID, got)
		}
	}
	if len(h.drv.Switches()) != 0 {
		t.Fatal("switched over on a refused approval")
	}
	publishApproval(t, h, wire.Ack{Fingerprint: al.Fingerprint, By: "U123", Nonce: pending.Nonce, ID: "good"})
	got := <-done
	if got.Decision != DecisionActed || got.Evidence["approved_by"] != "U123 via slack" {
		t.Fatalf("%s %s: %s %v", got.Decision, got.Safeguard, got.Reason, got.Evidence)
	}
	if h.act.Refused(RefusedNonce) != 2 || h.act.Refused(RefusedApprover) != 1 || h.act.Refused(RefusedAge) != 1 {
		t.Errorf("counts: nonce %v approver %v age %v", h.act.Refused(RefusedNonce), h.act.Refused(RefusedApprover), h.act.Refused(RefusedAge))
	}
}

// TestVantageSpoofing: a batch whose payload names another host than its
// subject is not a vantage point, and is counted.
func TestVantageSpoofing(t *testing.T) {
	_, js := startNATS(t)
	h := newHarness(t, js, bucket(), nil)
	forged := wire.EncodeBatch(&wire.Batch{Cluster: testCluster, Host: "db-3", Start: h.clock.Now(), Interval: time.Second,
		Series: []wire.Series{{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}}})
	if h.act.ObserveMsg(wire.SamplesSubject(testCluster, "db-2"), forged) {
		t.Fatal("a batch from db-2 speaking as db-3 counted")
	}
	if h.act.ObserveMsg(wire.SamplesSubject("other", "db-3"), forged) {
		t.Fatal("a batch of another cluster counted")
	}
	if h.act.ObserveMsg("mciv.samples.bad", forged) || h.act.ObserveMsg(wire.SamplesSubject(testCluster, "db-3"), []byte("junk")) {
		t.Fatal("a malformed subject or batch counted")
	}
	if got := h.act.Refused(RefusedSpoofedSample); got != 2 {
		t.Errorf("spoofed samples counted %v, want 2", got)
	}
	if got := h.act.Refused(RefusedBadSample); got != 2 {
		t.Errorf("bad samples counted %v, want 2", got)
	}
	if !h.act.ObserveMsg(wire.SamplesSubject(testCluster, "db-3"), forged) {
		t.Fatal("db-3's own batch did not count")
	}
}

// publishSigned publishes ack on subject through js, signed by s (nil:
// unsigned); tamper, when set, changes the payload after signing.
func publishSigned(t *testing.T, js jetstream.JetStream, s *auth.Signer, subject string, ack wire.Ack, tamper func([]byte) []byte) {
	t.Helper()
	data, err := wire.EncodeAck(&ack)
	if err != nil {
		t.Fatal(err)
	}
	m := &nats.Msg{Subject: subject, Data: data}
	if err := s.Sign(m); err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		m.Data = tamper(m.Data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(ack.ID)); err != nil {
		t.Fatalf("%s: %v", ack.ID, err)
	}
}

// TestSecurityForgedApprovals: on a server enforcing the shipped
// permissions, with the actuator verifying signatures, approvals that carry
// the live nonce and a listed approver's name but were not made by the
// notifier for that person are refused, counted, audited on MCIV_ACTIONS,
// and switch nothing over: unsigned, tampered, signed by another trust
// root, signed by a role that may not approve, an operator approving in an
// approver's name, an unlisted user, an ack for another cluster. The
// notifier's signed press acts; a replay of that stored press in the next
// request is refused; an operator's approval in its own name acts where
// the configuration allows it.
func TestSecurityForgedApprovals(t *testing.T) {
	sb := startSecureNATS(t)
	h := newHarnessOpts(t, sb.js(t, auth.Actuator, "mon-1"), DefaultKVBucket, func(c *Config) {
		c.Rules["pg_latency"] = Policy{When: WhenPrimary, Approval: true}
		c.Cooldown = Duration(time.Second)
		c.Approvers = []string{"U123", "alice"}
		c.OperatorApprovals = true
	}, func(o *Options) { o.Verifier, o.Secured = sb.verifier(t), true })
	notifierJS := sb.js(t, auth.Notifier, "mon-1")
	operatorJS := sb.js(t, auth.Operator, "mallory")
	notifier := sb.signer(t, auth.Notifier, testCluster, "mon-1")
	mallory := sb.signer(t, auth.Operator, testCluster, "mallory")
	alice := sb.signer(t, auth.Operator, testCluster, "alice")
	otherCluster := sb.signer(t, auth.Operator, "other", "U123")
	collector := sb.signer(t, auth.Collector, testCluster, "db-2")
	otherTrust, err := auth.Init(filepath.Join(t.TempDir(), "other"), auth.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oc, err := otherTrust.Issue(auth.Identity{Role: auth.Notifier, Cluster: testCluster, Name: "mon-1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := auth.NewSigner(oc.JWT, oc.Seed)
	if err != nil {
		t.Fatal(err)
	}
	subject := wire.AckSubject(testCluster)

	h.healthyEvidence()
	al := h.alert("db-1", 20*time.Second)
	h.act.Track(al)
	done := make(chan wire.Action, 1)
	go func() { done <- h.act.Handle(context.Background(), al) }()
	pending := <-h.decs
	if pending.Decision != DecisionPendingApproval || pending.Nonce == "" {
		t.Fatalf("first decision %s", pending.Decision)
	}
	approval := func(id, by, via, cluster string) wire.Ack {
		return wire.Ack{Fingerprint: al.Fingerprint, Cluster: cluster, Action: wire.AckApprove, By: by, Via: via,
			At: h.clock.Now(), ID: id, Nonce: pending.Nonce}
	}
	for _, tc := range []struct {
		name   string
		js     jetstream.JetStream
		signer *auth.Signer
		ack    wire.Ack
		tamper func([]byte) []byte
		reason string
	}{
		{"unsigned, from the notifier's credentials", notifierJS, nil, approval("unsigned", "U123", "slack", testCluster), nil, RefusedUnsigned},
		{"hand-published by an operator, unsigned", operatorJS, nil, approval("hand", "U123", "slack", testCluster), nil, RefusedUnsigned},
		{"tampered after signing", notifierJS, notifier, approval("tampered", "U0MALLORY", "slack", testCluster),
			func(b []byte) []byte { return []byte(strings.Replace(string(b), "U0MALLORY", "U123", 1)) }, RefusedUnsigned},
		{"signed by another trust root", operatorJS, foreign, approval("foreign", "U123", "slack", testCluster), nil, RefusedUnsigned},
		{"signed by a collector's key", operatorJS, collector, approval("collector", "U123", "slack", testCluster), nil, RefusedRole},
		{"an operator in an approver's name", operatorJS, mallory, approval("impersonation", "U123", "slack", testCluster), nil, RefusedImpersonation},
		{"an operator in its own name, unlisted", operatorJS, mallory, approval("mallory", "mallory", "cli", testCluster), nil, RefusedApprover},
		{"an unlisted user pressing in Slack", notifierJS, notifier, approval("unlisted", "U0MALLORY", "slack", testCluster), nil, RefusedApprover},
		{"for another cluster, on this cluster's subject", notifierJS, notifier, approval("other-cluster", "U123", "slack", "other"), nil, RefusedCluster},
		{"an operator of another cluster", operatorJS, otherCluster, approval("other-operator", "U123", "cli", testCluster), nil, RefusedCluster},
	} {
		publishSigned(t, tc.js, tc.signer, subject, tc.ack, tc.tamper)
		audit := <-h.decs
		if audit.Decision != DecisionApprovalRefused || audit.Evidence["reason"] != tc.reason {
			t.Fatalf("%s: audit %s %v, want %s refused", tc.name, audit.Decision, audit.Evidence, tc.reason)
		}
		if len(h.drv.Switches()) != 0 {
			t.Fatalf("%s: switched over", tc.name)
		}
	}
	for reason, want := range map[string]float64{RefusedUnsigned: 4, RefusedRole: 1, RefusedImpersonation: 1,
		RefusedApprover: 2, RefusedCluster: 2} {
		if got := h.act.Refused(reason); got != want {
			t.Errorf("refused %s counted %v, want %v", reason, got, want)
		}
	}
	// Every refusal is on the audit stream.
	if n := countAudits(t, sb.js(t, auth.Admin, "auditor"), DecisionApprovalRefused); n != 10 {
		t.Errorf("%d approval_refused records on %s, want 10", n, bus.ActionsStream)
	}

	// Positive control: the notifier's signed press for a listed approver.
	publishSigned(t, notifierJS, notifier, subject, approval("good", "U123", "slack", testCluster), nil)
	got := <-done
	if got.Decision != DecisionActed || got.Evidence["approval_signed_by"] != "notifier/mon-1" {
		t.Fatalf("%s %s: %s %v", got.Decision, got.Safeguard, got.Reason, got.Evidence)
	}
	if n := len(h.drv.Switches()); n != 1 {
		t.Fatalf("%d switchovers, want 1", n)
	}
	if d := <-h.decs; d.Decision != DecisionActed { // the same record, through OnDecision
		t.Fatalf("decision %s after acting", d.Decision)
	}

	// The stored press, replayed as it is (signature and all) under a new
	// message id in the next request: the nonce is spent.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := sb.js(t, auth.Admin, "reader").Stream(ctx, bus.AcksStream)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Second) // past the cooldown
	h.healthyEvidence()
	al2 := h.alert("db-1", 20*time.Second)
	h.act.Track(al2)
	go func() { done <- h.act.Handle(context.Background(), al2) }()
	pending2 := <-h.decs
	if pending2.Decision != DecisionPendingApproval || pending2.Nonce == pending.Nonce {
		t.Fatalf("second request: %s %+v", pending2.Decision, pending2)
	}
	replay := &nats.Msg{Subject: stored.Subject, Data: stored.Data, Header: stored.Header}
	if _, err := operatorJS.PublishMsg(ctx, replay, jetstream.WithMsgID("replayed")); err != nil {
		t.Fatal(err)
	}
	if audit := <-h.decs; audit.Decision != DecisionApprovalRefused || audit.Evidence["reason"] != RefusedNonce {
		t.Fatalf("replay: audit %s %v", audit.Decision, audit.Evidence)
	}
	if len(h.drv.Switches()) != 1 {
		t.Fatal("the replayed press switched over again")
	}
	// Positive control: an operator approving in its own name, allowed
	// by operator_approvals and listed.
	a2 := approval("alice", "alice", "cli", testCluster)
	a2.Nonce, a2.At = pending2.Nonce, h.clock.Now()
	publishSigned(t, operatorJS, alice, subject, a2, nil)
	got = <-done
	if got.Decision != DecisionActed || got.Evidence["approved_by"] != "alice via cli" || got.Evidence["approval_signed_by"] != "operator/alice" {
		t.Fatalf("operator approval: %s %s: %s %v", got.Decision, got.Safeguard, got.Reason, got.Evidence)
	}
}

// countAudits counts the records of decision on the actions stream.
func countAudits(t *testing.T, js jetstream.JetStream, decision string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, bus.ActionsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		msgs, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range msgs.Messages() {
			got++
			if a, err := wire.DecodeAction(m.Data()); err == nil && a.Decision == decision {
				n++
			}
		}
		if got == 0 {
			return n
		}
	}
}
