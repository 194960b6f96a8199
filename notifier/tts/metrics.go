package tts

import (
	"github.com/mciv/mciv/internal/promreg"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the result label of mciv_tts_engine_syntheses_total.
const (
	resultSuccess = "success"
	resultFailure = "failure"
	resultTimeout = "timeout"
)

// Values of the result label of mciv_tts_requests_total.
const (
	requestSynthesized = "synthesized"
	requestCached      = "cached"
	requestFailed      = "failed"
)

// metrics are a Chain's Prometheus metrics; all of them work unregistered.
type metrics struct {
	requests  *prometheus.CounterVec
	syntheses *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, engines []string, logger *slog.Logger) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_tts_requests_total",
			Help: "Clips asked of a text-to-speech chain, by result (synthesized, cached, failed: no engine could speak).",
		}, []string{"result"}),
		syntheses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_tts_engine_syntheses_total",
			Help: "Attempts of one text-to-speech engine to synthesize a clip, by result (success, failure, timeout).",
		}, []string{"engine", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mciv_tts_engine_synthesis_seconds",
			Help:    "Time a text-to-speech engine took for a clip it synthesized.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30},
		}, []string{"engine"}),
	}
	m.requests = promreg.Register(reg, m.requests, logger)
	m.syntheses = promreg.Register(reg, m.syntheses, logger)
	m.duration = promreg.Register(reg, m.duration, logger)
	for _, r := range []string{requestSynthesized, requestCached, requestFailed} {
		m.requests.WithLabelValues(r)
	}
	for _, e := range engines {
		for _, r := range []string{resultSuccess, resultFailure, resultTimeout} {
			m.syntheses.WithLabelValues(e, r)
		}
	}
	return m
}
