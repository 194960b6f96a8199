package analyzer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/internal/wire"
)

// Reasons a message on a samples subject is refused
// (mciv_analyzer_bad_messages_total{reason}).
const (
	BadSubject = "subject" // not mciv.samples.<cluster>.<host>
	BadDecode  = "decode"  // not a sample batch this build reads
	BadForged  = "forged"  // the batch names another cluster or host than its subject
	BadInvalid = "invalid" // decodes but cannot be evaluated (e.g. no interval)
)

type metrics struct {
	batches       prometheus.Counter
	samples       prometheus.Counter
	ignored       *prometheus.CounterVec
	restarts      prometheus.Counter
	bad           *prometheus.CounterVec
	evalErrors    *prometheus.CounterVec
	published     *prometheus.CounterVec
	publishErrors prometheus.Counter
	queued        prometheus.Gauge
	dropped       prometheus.Counter
	delay         prometheus.Histogram
	activeGauges  [][2]prometheus.Gauge // per rule index: pending, firing
}

func newMetrics(reg prometheus.Registerer, ruleNames []string) (*metrics, error) {
	m := &metrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_batches_total", Help: "Sample batches evaluated.",
		}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_samples_total", Help: "Series of the sample batches evaluated.",
		}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_analyzer_batches_ignored_total", Help: "Sample batches not evaluated because they repeat or predate the last batch of their host.",
		}, []string{"reason"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_collector_restarts_total", Help: "Batches that started a new collector run (sequence reset).",
		}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_analyzer_bad_messages_total", Help: "Messages on samples subjects refused, by reason.",
		}, []string{"reason"}),
		evalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_analyzer_evaluation_errors_total", Help: "Rule evaluations that failed, by rule.",
		}, []string{"rule"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_analyzer_alerts_published_total", Help: "Alert state changes stored in JetStream, by state.",
		}, []string{"state"}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_alert_publish_errors_total", Help: "Failed attempts to publish an alert state change (it is kept and retried).",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mciv_analyzer_alerts_queued", Help: "Alert state changes waiting to be published.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_alerts_dropped_total", Help: "Alert state changes dropped unpublished because the queue was full.",
		}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mciv_analyzer_batch_delay_seconds",
			Help:    "Analyzer clock minus the end of a batch's interval when it is evaluated (transport delay plus clock skew; negative counts as 0).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mciv_analyzer_active_alerts", Help: "Alerts pending or firing, by rule and state.",
	}, []string{"rule", "state"})

	// Create the known series up front so that they read 0 rather than
	// being absent.
	for _, r := range []string{BadSubject, BadDecode, BadForged, BadInvalid} {
		m.bad.WithLabelValues(r)
	}
	for _, r := range []string{eval.IgnoredDuplicate, eval.IgnoredOutOfOrder} {
		m.ignored.WithLabelValues(r)
	}
	for _, s := range []wire.AlertState{wire.StateFiring, wire.StateResolved} {
		m.published.WithLabelValues(string(s))
	}
	m.activeGauges = make([][2]prometheus.Gauge, len(ruleNames))
	for i, name := range ruleNames {
		m.evalErrors.WithLabelValues(name)
		m.activeGauges[i] = [2]prometheus.Gauge{active.WithLabelValues(name, "pending"), active.WithLabelValues(name, "firing")}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.batches, m.samples, m.ignored, m.restarts, m.bad, m.evalErrors,
		m.published, m.publishErrors, m.queued, m.dropped, m.delay, active,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering analyzer metrics: %w", err)
		}
	}
	return m, nil
}
