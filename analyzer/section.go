package analyzer

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
}

// On reports whether the analyzer runs (enabled absent or true).
func (s Section) On() bool { return s.Enabled == nil || *s.Enabled }
