package actuator

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/internal/wire"
)

// TestDecisionMetrics: every label set a configured cluster can produce
// is exported at zero before any decision; each audited decision counts
// once under its decision and bounded reason.
func TestDecisionMetrics(t *testing.T) {
	_, js := startNATS(t)
	h := newHarness(t, js, bucket(), nil)
	reg := prometheus.NewRegistry()
	if err := reg.Register(h.act.Metrics()); err != nil {
		t.Fatal(err)
	}
	series := func() map[string]int {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, mf := range mfs {
			out[mf.GetName()] = len(mf.GetMetric())
		}
		return out
	}
	before := series()
	// 13 safeguards + 4 outcomes + dry_run + pending_approval + 7 approval refusals.
	if n := before["mciv_failover_decisions_total"]; n != 26 {
		t.Errorf("%d preset decision series for %s, want 26", n, testCluster)
	}
	if n := before["mciv_failover_refused_total"]; n != len(refusedReasons) {
		t.Errorf("%d preset refused series, want %d", n, len(refusedReasons))
	}
	for _, d := range [][2]string{{DecisionRefused, string(GuardVantage)}, {DecisionActed, "succeeded"}, {DecisionDryRun, ReasonDryRun}} {
		if v := h.act.Decisions(testCluster, d[0], d[1]); v != 0 {
			t.Errorf("%v = %v before any decision", d, v)
		}
	}

	// Refused: no evidence from other hosts (vantage), after the wait.
	al := h.alert("db-1", time.Hour)
	if got := h.handle(al); got.Decision != DecisionRefused {
		t.Fatalf("without evidence: %s %s", got.Decision, got.Safeguard)
	} else if v := h.act.Decisions(testCluster, DecisionRefused, got.Safeguard); v != 1 {
		t.Errorf("refused/%s = %v, want 1", got.Safeguard, v)
	}
	// Acted.
	h.healthyEvidence()
	if got := h.handle(h.alert("db-1", 20*time.Second)); got.Decision != DecisionActed {
		t.Fatalf("with evidence: %s %s %s", got.Decision, got.Safeguard, got.Reason)
	}
	if v := h.act.Decisions(testCluster, DecisionActed, "succeeded"); v != 1 {
		t.Errorf("acted/succeeded = %v, want 1", v)
	}
	// A cluster without a driver: refused on topology, a new series.
	other := h.alert("db-9", 20*time.Second)
	other.Labels["cluster"] = "elsewhere"
	other.Fingerprint = "fp-elsewhere"
	if got := h.handle(other); got.Safeguard != string(GuardTopology) {
		t.Fatalf("unknown cluster: %s %s", got.Decision, got.Safeguard)
	}
	if v := h.act.Decisions("elsewhere", DecisionRefused, string(GuardTopology)); v != 1 {
		t.Errorf("elsewhere refused/topology = %v, want 1", v)
	}
	if n := series()["mciv_failover_decisions_total"]; n != 27 {
		t.Errorf("%d decision series after the decisions, want 27", n)
	}
}

func TestDecisionReasonIsBounded(t *testing.T) {
	for _, tc := range []struct {
		act  wire.Action
		want string
	}{
		{wire.Action{Decision: DecisionActed, Outcome: "unknown", Safeguard: string(GuardDriver), Reason: "free text"}, "unknown"},
		{wire.Action{Decision: DecisionRefused, Safeguard: string(GuardCooldown), Reason: "free text"}, "cooldown"},
		{wire.Action{Decision: DecisionDryRun, Reason: "dry run: would switch over"}, ReasonDryRun},
		{wire.Action{Decision: DecisionPendingApproval}, ReasonApprovalRequested},
		{wire.Action{Decision: DecisionApprovalRefused, Safeguard: string(GuardApproval), Evidence: map[string]string{"reason": RefusedNonce}}, RefusedNonce},
		{wire.Action{Decision: DecisionRefused}, "none"},
	} {
		if got := decisionReason(&tc.act); got != tc.want {
			t.Errorf("decisionReason(%s/%s) = %q, want %q", tc.act.Decision, tc.act.Safeguard, got, tc.want)
		}
	}
}
