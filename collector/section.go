package collector

import (
	"errors"
	"fmt"
	"time"

	"github.com/mciv/mciv/internal/yamltime"
)

// Section is the `collector:` section of mciv's configuration.
type Section struct {
	// Enabled switches the collector off in `mciv up` when false (absent: on).
	Enabled  *bool             `yaml:"enabled"`
	Interval yamltime.Duration `yaml:"interval"`
	// NotableInterval: a batch is cut short and published this soon after
	// it began when a TCP retransmit or reset arrives (default 250ms; 0s
	// switches early batches off).
	NotableInterval yamltime.Duration `yaml:"notable_interval"`
	// MaxEventsPerInterval bounds the notable events one host publishes per interval.
	MaxEventsPerInterval int `yaml:"max_events_per_interval"`
	// NetNS restricts the TCP signals to one network namespace (a path like
	// /var/run/netns/NAME or /proc/PID/ns/net), which then counts as this
	// host: one collector per namespace (containers, test hosts).
	NetNS string `yaml:"netns"`
	// PostgresProbes is how PostgreSQL query latency is measured: "packet"
	// (default: from the server's packets, on its cgroup; where that cannot
	// be, at its sockets), "socket" (the socket tracepoints) or "usdt" (its
	// USDT probes).
	PostgresProbes string `yaml:"postgres_probes"`
	// QuerySampleQPS: in packet mode, above this many queries per second
	// the packet path measures the requests begun in a quarter (at a random place) of
	// each interval and scales the counts (default 2000; -1: never).
	QuerySampleQPS int `yaml:"query_sample_qps"`
}

// DefaultSection is the collector section used when the file has none.
func DefaultSection() Section {
	return Section{Interval: yamltime.Duration(time.Second), NotableInterval: yamltime.Duration(DefaultNotableInterval), MaxEventsPerInterval: 100}
}

// On reports whether the collector runs (enabled absent or true).
func (s Section) On() bool { return s.Enabled == nil || *s.Enabled }

// Validate checks the section's values.
func (s Section) Validate() error {
	var errs []error
	if s.Interval < yamltime.Duration(10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("collector.interval %s: must be at least 10ms", time.Duration(s.Interval)))
	}
	if s.NotableInterval != 0 && s.NotableInterval < yamltime.Duration(10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("collector.notable_interval %s: must be at least 10ms, or 0s for no early batches", time.Duration(s.NotableInterval)))
	}
	if s.MaxEventsPerInterval < 0 {
		errs = append(errs, errors.New("collector.max_events_per_interval must not be negative"))
	}
	if s.QuerySampleQPS < -1 {
		errs = append(errs, fmt.Errorf("collector.query_sample_qps %d: a rate, 0 for the default, or -1 for never", s.QuerySampleQPS))
	}
	return errors.Join(errs...)
}

// Config is the collector's run configuration for this section on the
// given cluster and host.
func (s Section) Config(cluster, host string) Config {
	notable := time.Duration(s.NotableInterval)
	if notable == 0 {
		notable = -1 // 0s in the file: off
	}
	return Config{
		Cluster: cluster, Host: host,
		Interval:             time.Duration(s.Interval),
		NotableInterval:      notable,
		MaxEventsPerInterval: s.MaxEventsPerInterval,
		NetNS:                s.NetNS,
		PostgresProbes:       s.PostgresProbes,
		QuerySampleQPS:       s.QuerySampleQPS,
	}
}
