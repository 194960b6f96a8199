package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/httpserver"
	"github.com/mciv/mciv/notifier"
)

// health holds the liveness and readiness checks of one process's parts,
// served on the metrics listener (/healthz, /livez, /readyz). The process
// is ready once Run has started every part (the "startup" check), every
// part's NATS connection is up, and each part says it is: the analyzer
// subscribed with its rules loaded, the notifier's consumers bound, the
// failover actuator consuming the alerts stream.
type health struct {
	*httpserver.Health
	stage atomic.Pointer[string] // what Run is doing until every part started; nil after
}

func newHealth() *health {
	h := &health{Health: httpserver.NewHealth(0)}
	h.starting("starting")
	h.AddReadiness("startup", func(context.Context) error {
		if s := h.stage.Load(); s != nil {
			return errors.New(*s)
		}
		return nil
	})
	return h
}

// starting says what Run is doing (the startup check's error until
// started is called).
func (h *health) starting(what string) { h.stage.Store(&what) }

// started marks every part as started.
func (h *health) started() { h.stage.Store(nil) }

// natsConn adds the check of one part's connection: ready while connected
// (not while reconnecting, draining or closed).
func (h *health) natsConn(part string, nc *nats.Conn) {
	h.AddReadiness("nats-"+part, func(context.Context) error {
		if nc.IsConnected() {
			return nil
		}
		return fmt.Errorf("%s: NATS connection %s", part, strings.ToLower(nc.Status().String()))
	})
}

// analyzer adds the analyzer's checks: subscribed to the samples (or, in
// fleet mode, its partition consumers set up) and rules loaded.
func (h *health) analyzer(a *analyzer.Analyzer) {
	h.AddReadiness("analyzer", func(context.Context) error {
		select {
		case <-a.Ready():
			return nil
		default:
			return errors.New("analyzer: not consuming samples yet")
		}
	})
	h.AddReadiness("analyzer-rules", func(context.Context) error {
		if set := a.Rules(); set == nil || set.NumRules() == 0 {
			return errors.New("analyzer: no rules loaded")
		}
		return nil
	})
}

// notifier adds the check that every consumer of the notifier runs.
func (h *health) notifier(d *notifier.Dispatcher) {
	h.AddReadiness("notifier", func(context.Context) error { return d.Ready() })
}

// failover adds the check that the actuator consumes the alerts stream.
func (h *health) failover(a *actuator.Actuator) {
	h.AddReadiness("failover", func(context.Context) error { return a.Ready() })
}
