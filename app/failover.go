package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/rules"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// startFailover starts the guarded failover actuator on its own
// connection when cfg.Failover.Enabled: Patroni drivers for the configured
// clusters, its durable consumer on MCIV_ALERTS, and its KV state. The
// rules whose `actions` ask for failover are acted on, as are those named
// in failover.rules (which take precedence).
func startFailover(ctx context.Context, cfg config.Config, set *rules.Set, nc *nats.Conn, acks ackTrust, reg prometheus.Registerer, logger *slog.Logger,
	start func(string, func(context.Context) error)) (*actuator.Actuator, error) {
	fcfg := cfg.Failover
	fcfg.Rules = failoverPolicies(set, cfg.Failover.Rules)
	fcfg.Approvers = approvers(cfg)
	log := logger.With("part", "failover")
	if len(fcfg.Rules) == 0 {
		log.Warn("failover is enabled but no rule asks for it: add actions: [{failover: {}}] to a rule, or failover.rules")
	}
	drivers, err := actuator.PatroniDrivers(fcfg, os.Getenv, log)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	js, err := bus.JetStream(nc)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	a, err := actuator.New(actuator.Options{Config: fcfg, JS: js, Drivers: drivers, Logger: log, Replicas: bus.Replicas(cfg.NATS.Replicas, nc),
		Verifier: acks.verifier, Secured: acks.secured})
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	if err := a.Open(ctx); err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	if reg != nil {
		if err := reg.Register(a.Metrics()); err != nil {
			return nil, fmt.Errorf("failover: metrics: %w", err)
		}
	}
	start("failover", a.Run)
	return a, nil
}

// approvers are who may approve a failover: failover.approvers, else
// every on-call person with a Slack id.
func approvers(cfg config.Config) []string {
	if len(cfg.Failover.Approvers) > 0 {
		return cfg.Failover.Approvers
	}
	var ids []string
	for _, p := range cfg.OnCall.People {
		if p.Slack != "" {
			ids = append(ids, p.Slack)
		}
	}
	return ids
}

// failoverPolicies merges the failover actions of the rules with the
// policies named in the configuration; the configuration wins.
func failoverPolicies(set *rules.Set, configured map[string]actuator.Policy) map[string]actuator.Policy {
	out := make(map[string]actuator.Policy)
	if set != nil {
		for _, r := range set.Rules() {
			if fa := r.FailoverPolicy(); fa != nil {
				out[r.Alert] = actuator.Policy{When: fa.When, Approval: fa.Approval, DryRun: fa.DryRun}
			}
		}
	}
	for name, p := range configured {
		out[name] = p
	}
	return out
}
