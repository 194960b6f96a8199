// Package promreg registers Prometheus collectors so that a second
// instance of a part in one process (a replica in a test, a restarted
// integration) continues the counts of the first instead of failing.
package promreg

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns the collector to use: c, or
// the identical collector registered before. Any other registration error
// is logged (logger may be nil) and c is returned unregistered; a nil reg
// registers nothing.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C, logger *slog.Logger) C {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	if err == nil {
		return c
	}
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if logger != nil {
		logger.Warn("metric not registered", "err", err)
	}
	return c
}
