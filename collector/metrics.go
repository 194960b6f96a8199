package collector

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collector's own Prometheus metrics.
type metrics struct {
	batches          prometheus.Counter
	earlyBatches     prometheus.Counter
	publishErrors    *prometheus.CounterVec
	eventsPublished  prometheus.Counter
	eventsSuppressed prometheus.Counter
	eventsMalformed  prometheus.Counter
	// slowScanUnread counts backends whose client socket the title scan
	// could not read (pidfd_getfd needs CAP_SYS_PTRACE over them).
	slowScanUnread   prometheus.Counter
	ringbufDropped   prometheus.Counter
	mapReadErrors    prometheus.Counter
	hookUp           *prometheus.GaugeVec
	seriesDropped    *prometheus.CounterVec
	querySampleRatio prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_collector_batches_published_total",
			Help: "Sample batches published.",
		}),
		earlyBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_collector_early_batches_total",
			Help: "Sample batches cut short and published early because a notable event (TCP retransmit or reset) arrived (collector.notable_interval).",
		}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_collector_publish_errors_total",
			Help: "Messages that could not be published, by kind (samples, events).",
		}, []string{"kind"}),
		eventsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_collector_events_published_total",
			Help: "Notable events published.",
		}),
		eventsSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_collector_events_suppressed_total",
			Help: "Notable events read from the kernel but not published because the interval's event budget was spent.",
		}),
		eventsMalformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_collector_events_malformed_total",
			Help: "Ring buffer records that could not be decoded.",
		}),
		slowScanUnread: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_collector_slow_scan_unread_total",
			Help: "Busy PostgreSQL backends whose client socket the process-title scan could not read (it needs CAP_SYS_PTRACE over them): their slow queries begun outside a sampling window are not reported.",
		}),
		ringbufDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_collector_ringbuf_dropped_total",
			Help: "Events the kernel dropped because the ring buffer was full.",
		}),
		mapReadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_collector_map_read_errors_total",
			Help: "Failed reads of kernel counter maps (the next interval catches up).",
		}),
		hookUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mciv_collector_hook_up",
			Help: "1 if a program is attached to the kernel hook, 0 if no way to attach it worked.",
		}, []string{"hook"}),
		seriesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_collector_series_dropped_total",
			Help: "Series merged into one labelled \"other\" because their signal reached its series limit, by signal.",
		}, []string{"signal"}),
		querySampleRatio: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mciv_collector_query_sample_ratio",
			Help: "Share of PostgreSQL requests the packet path measures: 1, or 1/4 while the servers are busy (requests begun in a quarter of each interval, at a random place; db_query_seconds counts are scaled back).",
		}),
	}
	m.querySampleRatio.Set(1)
	m.publishErrors.WithLabelValues("samples")
	m.publishErrors.WithLabelValues("events")
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		m.batches, m.earlyBatches, m.publishErrors, m.eventsPublished, m.eventsSuppressed,
		m.eventsMalformed, m.slowScanUnread, m.ringbufDropped, m.mapReadErrors, m.hookUp, m.seriesDropped, m.querySampleRatio,
	} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register collector metrics: %w", err)
	}
	return m, nil
}
