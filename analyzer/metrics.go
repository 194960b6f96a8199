package analyzer

import (
	"fmt"
	"slices"

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
	active        *prometheus.GaugeVec
	activeGauges  [][2]prometheus.Gauge // per rule index: pending, firing
	activeNames   []string              // rule names of activeGauges
	reloadOK      prometheus.Gauge
	reloadTime    prometheus.Gauge
	reloads       *prometheus.CounterVec
	rulesLoaded   prometheus.Gauge
	seriesDropped *prometheus.CounterVec // series dropped before evaluation, by reason
	seriesRefused *prometheus.CounterVec // series refused because their host is over a cap, by cluster, host, reason
	hosts         prometheus.Gauge
	skewed        *prometheus.CounterVec // batches far from the analyzer's clock, by direction
	stateWrites   prometheus.Counter
	restored      prometheus.Counter
	stateFailures prometheus.Counter // state writes dropped on a full bucket
	replayed      prometheus.Counter // changes replayed from the outbox journal
	journalErrors prometheus.Counter // journal writes that failed
}

// Directions of clock skew (mciv_analyzer_batches_clock_skewed_total).
const (
	SkewBehind = "behind"
	SkewAhead  = "ahead"
)

// Results of a rules reload (mciv_analyzer_rules_reloads_total{result}).
const (
	ReloadApplied   = "applied"   // every file valid: the new rules apply
	ReloadRejected  = "rejected"  // some file invalid: the last good rules stay
	ReloadUnchanged = "unchanged" // the files did not change
)

// setRules points the per-rule metrics at a new rule list, removing the
// series of rules that are gone.
func (m *metrics) setRules(names []string) {
	for _, old := range m.activeNames {
		if !slices.Contains(names, old) {
			m.active.DeleteLabelValues(old, "pending")
			m.active.DeleteLabelValues(old, "firing")
			m.evalErrors.DeleteLabelValues(old)
		}
	}
	m.activeGauges = make([][2]prometheus.Gauge, len(names))
	for i, name := range names {
		m.evalErrors.WithLabelValues(name)
		m.activeGauges[i] = [2]prometheus.Gauge{m.active.WithLabelValues(name, "pending"), m.active.WithLabelValues(name, "firing")}
	}
	m.activeNames = slices.Clone(names)
	m.rulesLoaded.Set(float64(len(names)))
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
	m.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mciv_analyzer_active_alerts", Help: "Alerts pending or firing, by rule and state.",
	}, []string{"rule", "state"})
	active := m.active
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mciv_analyzer_rules_last_reload_success", Help: "1 if the last rules (re)load applied, 0 if it was rejected and the last good rules stay.",
	})
	m.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mciv_analyzer_rules_last_reload_success_timestamp_seconds", Help: "When rules were last loaded successfully (Unix time).",
	})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_analyzer_rules_reloads_total", Help: "Rules reload attempts, by result (applied, rejected, unchanged).",
	}, []string{"result"})
	m.rulesLoaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mciv_analyzer_rules_loaded", Help: "Rules in the rule set being evaluated.",
	})
	m.seriesDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_analyzer_series_dropped_total", Help: "Series of evaluated batches left out because their value cannot be used (nan, inf, negative_counter, no_histogram).",
	}, []string{"reason"})
	for _, r := range eval.DropReasons() {
		m.seriesDropped.WithLabelValues(r)
	}
	m.seriesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_analyzer_series_refused_total",
		Help: "Series of evaluated batches refused because their host is over a cap: max_series (distinct series per host) or max_groups (alert groups per host). The host's other series are evaluated.",
	}, []string{"cluster", "host", "reason"})
	m.hosts = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mciv_analyzer_hosts", Help: "Hosts the analyzer remembers (silent, idle hosts are forgotten after the group idle TTL).",
	})
	m.skewed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_analyzer_batches_clock_skewed_total",
		Help: "Batches whose interval ends further than the allowed clock skew from the analyzer's clock: behind (late, or the host's clock is slow) or ahead (the host's clock is fast). They are evaluated on their own time.",
	}, []string{"direction"})
	m.skewed.WithLabelValues(SkewBehind)
	m.skewed.WithLabelValues(SkewAhead)
	m.stateWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mciv_analyzer_alert_state_writes_total", Help: "Alert states written to (or deleted from) the " + StateBucket + " KV bucket.",
	})
	m.restored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mciv_analyzer_alerts_restored_total", Help: "Pending and firing alerts restored from the state bucket at start.",
	})
	m.stateFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mciv_analyzer_state_write_failures_total", Help: "Alert states not persisted because the " + StateBucket + " bucket (or the server's store) was full; the announcements went on.",
	})
	m.replayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mciv_analyzer_outbox_replayed_total", Help: "Alert state changes found in the outbox journal at start (decided by a previous run, not yet stored in JetStream) and queued again.",
	})
	m.journalErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mciv_analyzer_outbox_journal_errors_total", Help: "Failed writes of the outbox journal on disk (the changes stay queued in memory).",
	})
	for _, r := range []string{ReloadApplied, ReloadRejected, ReloadUnchanged} {
		m.reloads.WithLabelValues(r)
	}

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
	m.setRules(ruleNames)
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.batches, m.samples, m.ignored, m.restarts, m.bad, m.evalErrors,
		m.published, m.publishErrors, m.queued, m.dropped, m.delay, active,
		m.reloadOK, m.reloadTime, m.reloads, m.rulesLoaded, m.stateWrites, m.restored, m.seriesDropped, m.skewed,
		m.seriesRefused, m.hosts, m.stateFailures, m.replayed, m.journalErrors,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering analyzer metrics: %w", err)
		}
	}
	return m, nil
}
