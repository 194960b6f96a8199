package actuator

import (
	"context"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/wire"
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
// credentials, approvals come from the notifier's.
func TestSecurityApprovalRefusals(t *testing.T) {
	sb := startSecureNATS(t)
	h := newHarness(t, sb.js(t, auth.Actuator, "mon-1"), DefaultKVBucket, func(c *Config) {
		c.Rules["pg_latency"] = Policy{When: WhenPrimary, Approval: true}
	})
	h.ackJS = sb.js(t, auth.Notifier, "mon-1")
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
