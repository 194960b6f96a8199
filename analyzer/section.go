package analyzer

import (
	"time"

	"github.com/mciv/mciv/internal/yamltime"
)

// Section is the `analyzer:` section of mciv's configuration.
type Section struct {
	// Enabled switches the analyzer (and the failover actuator beside it)
	// off in `mciv up` when false (absent: on).
	Enabled *bool `yaml:"enabled"`
	// Rules are files or directories of rule files; empty uses the built-in defaults.
	Rules []string `yaml:"rules"`
	// Partitioned makes this analyzer one member of a fleet that shares
	// the partitions of the input stream (see FleetConfig); the partition
	// count is nats.partitions.
	Partitioned bool `yaml:"partitioned"`
	// Fleet tunes fleet mode; zero values take FleetConfig's defaults.
	Fleet FleetSection `yaml:"fleet"`
	// Limits caps what one host can make the analyzer hold.
	Limits LimitsSection `yaml:"limits"`
}

// LimitsSection is `analyzer.limits`: caps per host (see Limits).
type LimitsSection struct {
	// MaxSeriesPerHost caps the distinct series of one host (0: 2000;
	// negative: no cap).
	MaxSeriesPerHost int `yaml:"max_series_per_host"`
	// MaxGroupsPerHost caps the alert groups of one host over every rule
	// (0: 10000; negative: no cap).
	MaxGroupsPerHost int `yaml:"max_groups_per_host"`
	// IdleTTL is how long an idle alert group, a silent series or a
	// silent host without alerts is remembered (0: 1h).
	IdleTTL yamltime.Duration `yaml:"idle_ttl"`
	// LogInterval is how often a host over a cap is logged (0: 1m).
	LogInterval yamltime.Duration `yaml:"log_interval"`
}

// Apply copies the section's limits into c.
func (s LimitsSection) Apply(c Config) Config {
	c.Limits = Limits{MaxSeriesPerHost: s.MaxSeriesPerHost, MaxGroupsPerHost: s.MaxGroupsPerHost, LogInterval: s.LogInterval.D()}
	if s.IdleTTL > 0 {
		c.GroupIdleTTL = s.IdleTTL.D()
	}
	return c
}

// FleetSection is `analyzer.fleet`: the timings of fleet mode.
type FleetSection struct {
	// PinTimeout is how long a partition's owner may stop pulling before
	// the server pins another member (FleetConfig.PinnedTTL; 0: 3s).
	PinTimeout yamltime.Duration `yaml:"pin_timeout"`
	// CheckpointInterval is how often an owner checkpoints each
	// partition (0: 2s).
	CheckpointInterval yamltime.Duration `yaml:"checkpoint_interval"`
	// AbsenceGrace holds absence rules after a reconnect or a takeover
	// (0: 10s; negative: none).
	AbsenceGrace yamltime.Duration `yaml:"absence_grace"`
	// Warmup is the history before a checkpoint a new owner replays
	// silently when the partition has no usable detector snapshot (0: 10m;
	// negative: none).
	Warmup yamltime.Duration `yaml:"warmup"`
	// SnapshotInterval is how often an owner stores each partition's
	// detector snapshot in the object store MCIV_DETECTORS, from which a
	// new owner restores the baselines instead of replaying Warmup
	// (FleetConfig.SnapshotInterval; 0: 30s; negative: never).
	SnapshotInterval yamltime.Duration `yaml:"snapshot_interval"`
	// Rebalance gives each partition back to its preferred member (by
	// rendezvous hashing of the live members) once that member is up
	// again (absent: on).
	Rebalance *bool `yaml:"rebalance"`
}

// Apply copies the section's settings into c (zero values leave c's).
func (s FleetSection) Apply(c FleetConfig) FleetConfig {
	set := func(dst *time.Duration, v yamltime.Duration) {
		if v != 0 {
			*dst = v.D()
		}
	}
	set(&c.PinnedTTL, s.PinTimeout)
	set(&c.CheckpointInterval, s.CheckpointInterval)
	set(&c.AbsenceGrace, s.AbsenceGrace)
	set(&c.Warmup, s.Warmup)
	set(&c.SnapshotInterval, s.SnapshotInterval)
	if s.Rebalance != nil {
		c.NoRebalance = !*s.Rebalance
	}
	return c
}

// On reports whether the analyzer runs (enabled absent or true).
func (s Section) On() bool { return s.Enabled == nil || *s.Enabled }
