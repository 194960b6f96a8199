package app

import (
	"github.com/nats-io/nats.go"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/internal/bus"
)

// fleetConfig is the analyzer's fleet configuration: off unless
// analyzer.partitioned is set, then nats.partitions partitions of the
// input stream with nats.replicas (or the cluster's default) replicas.
func fleetConfig(cfg config.Config, nc *nats.Conn) analyzer.FleetConfig {
	if !cfg.Analyzer.Partitioned {
		return analyzer.FleetConfig{}
	}
	replicas := bus.Replicas(cfg.NATS.Replicas, nc)
	parts := cfg.NATS.Partitions
	if parts <= 0 {
		parts = bus.DefaultPartitions
	}
	return cfg.Analyzer.Fleet.Apply(analyzer.FleetConfig{
		Partitions: parts,
		Member:     cfg.Host,
		Replicas:   replicas,
		Input:      cfg.NATS.InputOptions(replicas),
	})
}
