package notifier

import (
	"github.com/mciv/mciv/internal/promreg"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the result label of mciv_notifier_notifications_total.
const (
	resultSuccess = "success"
	resultFailure = "failure"
	// resultDeferred: the integration will deliver later (group_wait,
	// group_interval, another replica sending).
	resultDeferred = "deferred"
)

// Values of the outcome label of mciv_notifier_messages_total.
const (
	outcomeAcked      = "acked"      // every integration has the alert
	outcomeRetry      = "retry"      // some integration failed: redelivered later
	outcomeTerminated = "terminated" // undecodable: never redelivered
	outcomeDuplicate  = "duplicate"  // a redelivery of a message already delivered
	outcomeMuted      = "muted"      // silenced or inhibited: acknowledged, not delivered
	outcomeWaiting    = "waiting"    // held back behind an earlier change of the same alert
)

// Values of the reason label of mciv_notifier_bad_messages_total.
const (
	reasonMalformed     = "malformed"      // not JSON, or not an alert object
	reasonSchemaVersion = "schema_version" // written by another schema version
	reasonInvalid       = "invalid"        // decodes but misses required fields
)

// metrics are the dispatcher's Prometheus metrics.
type metrics struct {
	notifications *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	badMessages   *prometheus.CounterVec
	messages      *prometheus.CounterVec
	queueDepth    *prometheus.GaugeVec
	stateFailures *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, integrations []Notifier, logger *slog.Logger) *metrics {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_notifier_notifications_total",
			Help: "Attempts to deliver an alert state change to an integration, by result (success, failure, deferred).",
		}, []string{"integration", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mciv_notifier_notification_latency_seconds",
			Help:    "Time from the analyzer's decision of an alert state change to its successful delivery by an integration.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"integration"}),
		badMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_notifier_bad_messages_total",
			Help: "Messages on the alerts stream that do not decode as an alert and were dropped, by reason.",
		}, []string{"reason"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_notifier_messages_total",
			Help: "Deliveries of messages from the alerts stream handled, by integration and outcome (acked, retry, terminated, duplicate, muted, waiting).",
		}, []string{"integration", "outcome"}),
	}
	m.queueDepth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mciv_notifier_queue_depth",
		Help: "Alert state changes an integration has not delivered yet (its JetStream consumer's pending and unacknowledged messages).",
	}, []string{"integration"})
	m.queueDepth = promreg.Register(reg, m.queueDepth, logger)
	m.stateFailures = promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_notifier_state_failures_total",
		Help: "Failed reads and writes of the notifier's JetStream buckets (notification log, silences) while deciding whether to deliver an alert, by bucket and op (read, write); the alert is delivered all the same.",
	}, []string{"bucket", "op"}), logger)
	m.notifications = promreg.Register(reg, m.notifications, logger)
	m.latency = promreg.Register(reg, m.latency, logger)
	m.badMessages = promreg.Register(reg, m.badMessages, logger)
	m.messages = promreg.Register(reg, m.messages, logger)

	// Export zeros from the start so that rate() and alerts on these
	// series work before the first failure happens.
	for _, n := range integrations {
		m.notifications.WithLabelValues(n.Name(), resultSuccess)
		m.notifications.WithLabelValues(n.Name(), resultFailure)
		m.notifications.WithLabelValues(n.Name(), resultDeferred)
	}
	for _, r := range []string{reasonMalformed, reasonSchemaVersion, reasonInvalid} {
		m.badMessages.WithLabelValues(r)
	}
	for _, n := range integrations {
		m.queueDepth.WithLabelValues(n.Name())
		for _, o := range []string{outcomeAcked, outcomeRetry, outcomeTerminated, outcomeDuplicate, outcomeMuted, outcomeWaiting} {
			m.messages.WithLabelValues(n.Name(), o)
		}
	}
	return m
}
