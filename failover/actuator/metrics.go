package actuator

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/wire"
)

// Reasons of mciv_failover_decisions_total that are no safeguard and no
// outcome.
const (
	ReasonDryRun            = "dry_run"            // dry_run: the configuration or the rule says so
	ReasonApprovalRequested = "approval_requested" // pending_approval: a human is asked
	reasonNone              = "none"
)

// guards are the safeguards a refusal names, in the order they are checked.
var guards = []Safeguard{GuardPause, GuardCutOff, GuardPersistence, GuardTopology, GuardPatroniStop, GuardPrimary,
	GuardNotSpecific, GuardVantage, GuardCandidate, GuardCooldown, GuardApproval, GuardLease, GuardDriver}

// actedOutcomes are the outcomes of a switchover the driver attempted.
var actedOutcomes = []failover.Outcome{failover.OutcomeSucceeded, failover.OutcomeOtherLeader, failover.OutcomeFailed, failover.OutcomeUnknown}

// refusedReasons are the reasons of mciv_failover_refused_total.
var refusedReasons = append([]string{RefusedSpoofedSample, RefusedBadSample}, approvalRefusals...)

// approvalRefusals are the reasons an approval is refused.
var approvalRefusals = []string{RefusedNonce, RefusedApprover, RefusedAge,
	RefusedUnsigned, RefusedRole, RefusedImpersonation, RefusedCluster}

// decisionMetrics counts every decision the actuator audits.
type decisionMetrics struct {
	decisions *prometheus.CounterVec
}

func newDecisionMetrics() *decisionMetrics {
	return &decisionMetrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_failover_decisions_total",
		Help: "Failover decisions audited on MCIV_ACTIONS, by cluster, decision (acted, refused, dry_run, " +
			"pending_approval, approval_refused) and reason (the safeguard that refused, the switchover's outcome, " +
			"the approval's refusal reason, dry_run, approval_requested).",
	}, []string{"cluster", "decision", "reason"})}
}

// preset creates the series of every decision a configured cluster can
// produce at zero, so that rate() and increase() see the first one.
func (m *decisionMetrics) preset(cluster string) {
	for _, g := range guards {
		m.decisions.WithLabelValues(cluster, DecisionRefused, string(g))
	}
	for _, o := range actedOutcomes {
		m.decisions.WithLabelValues(cluster, DecisionActed, string(o))
	}
	m.decisions.WithLabelValues(cluster, DecisionDryRun, ReasonDryRun)
	m.decisions.WithLabelValues(cluster, DecisionPendingApproval, ReasonApprovalRequested)
	for _, r := range approvalRefusals {
		m.decisions.WithLabelValues(cluster, DecisionApprovalRefused, r)
	}
}

// count records one audited decision.
func (m *decisionMetrics) count(act *wire.Action) {
	m.decisions.WithLabelValues(act.Cluster, labelOrNone(act.Decision), decisionReason(act)).Inc()
}

// decisionReason is the reason label of a decision: bounded values only
// (never the free-text Reason).
func decisionReason(act *wire.Action) string {
	switch act.Decision {
	case DecisionActed:
		if act.Outcome != "" {
			return act.Outcome
		}
	case DecisionDryRun:
		return ReasonDryRun
	case DecisionPendingApproval:
		return ReasonApprovalRequested
	case DecisionApprovalRefused:
		if r := act.Evidence["reason"]; r != "" {
			return r
		}
	}
	return labelOrNone(act.Safeguard)
}

func labelOrNone(s string) string {
	if s == "" {
		return reasonNone
	}
	return s
}

// Metrics is the actuator's collector, for a Prometheus registry:
// mciv_failover_decisions_total and mciv_failover_refused_total.
func (a *Actuator) Metrics() prometheus.Collector { return collectors{a.refused, a.metrics.decisions} }

// collectors is several collectors registered as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

// Decisions is how many decisions of cluster were audited with decision
// and reason.
func (a *Actuator) Decisions(cluster, decision, reason string) float64 {
	var m dto.Metric
	if err := a.metrics.decisions.WithLabelValues(cluster, decision, reason).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
