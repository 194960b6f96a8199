package steer

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/mciv/mciv/steer/routes"
)

// DefaultBucket is the JetStream KV bucket of routes, one key per service.
const DefaultBucket = "MCIV_ROUTES"

// DefaultStatusFile is where an agent writes its state for `mciv steer status`.
const DefaultStatusFile = "/run/mciv/steer.json"

// Config is the `steer:` section.
//
//	steer:
//	  agent: true                      # steer this host's application (needs root, cgroup v2)
//	  controller: true                 # compute and publish routes (one per deployment, beside the analyzer)
//	  cgroup: /sys/fs/cgroup/unified/payments-app
//	  services:
//	    - {name: payments-rw, address: "127.77.0.1:5432", role: rw, clusters: [payments]}
//	    - {name: payments-ro, address: "127.77.0.2:5432", role: ro, clusters: [payments, payments-dr]}
//	  clusters:
//	    payments:
//	      patroni: ["http://10.0.0.10:8008", "http://10.0.0.11:8008"]
//	      members: {pg0: "10.0.0.10:5432", pg1: "10.0.0.11:5432"}
//	  interval: 500ms                  # topology poll and probe period of the controller
//	  hysteresis: {margin: 0.5, hold: 10s}
type Config struct {
	// Agent attaches the steering program to Cgroup and follows the routes.
	Agent bool `yaml:"agent"`
	// Controller computes routes and writes them to Bucket.
	Controller bool `yaml:"controller"`
	// Cgroup is the application's cgroup (v2) directory.
	Cgroup string `yaml:"cgroup"`
	// Bucket is the routes KV bucket (default MCIV_ROUTES).
	Bucket string `yaml:"bucket"`
	// StatusFile is where the agent writes its state (default /run/mciv/steer.json).
	StatusFile string `yaml:"status_file"`
	// Services are the service addresses to steer; nothing else is touched.
	Services []ServiceConfig `yaml:"services"`
	// Clusters are the database clusters, their Patroni API and members:
	// a route may name only these members, at these addresses.
	Clusters map[string]ClusterConfig `yaml:"clusters"`
	// Interval is the controller's topology poll and probe period (default 500ms).
	Interval yamltime.Duration `yaml:"interval"`
	// ProbeTimeout bounds one connect probe of a member (default 1s).
	ProbeTimeout yamltime.Duration `yaml:"probe_timeout"`
	// Hysteresis tunes read-only route changes.
	Hysteresis Hysteresis `yaml:"hysteresis"`
}

// ServiceConfig is one database service.
type ServiceConfig struct {
	Name     string   `yaml:"name"`
	Address  string   `yaml:"address"` // the virtual host:port applications dial
	Role     string   `yaml:"role"`    // rw or ro
	Clusters []string `yaml:"clusters"`
}

// ClusterConfig is one database cluster.
type ClusterConfig struct {
	// Patroni lists the cluster's Patroni REST API URLs (the controller
	// reads the topology from the first that answers).
	Patroni []string `yaml:"patroni"`
	// Members maps Patroni member names to their PostgreSQL host:port.
	Members map[string]string `yaml:"members"`
}

// Hysteresis is routes.Policy in YAML.
type Hysteresis struct {
	Margin float64           `yaml:"margin"`
	Hold   yamltime.Duration `yaml:"hold"`
}

// Enabled reports whether any steering part runs.
func (c Config) Enabled() bool { return c.Agent || c.Controller }

// SetDefaults fills the defaults.
func (c *Config) SetDefaults() {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.StatusFile == "" {
		c.StatusFile = DefaultStatusFile
	}
	if c.Interval <= 0 {
		c.Interval = yamltime.Duration(500 * time.Millisecond)
	}
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = yamltime.Duration(time.Second)
	}
	p := routes.DefaultPolicy()
	if c.Hysteresis.Margin <= 0 {
		c.Hysteresis.Margin = p.Margin
	}
	if c.Hysteresis.Hold <= 0 {
		c.Hysteresis.Hold = yamltime.Duration(p.Hold)
	}
}

// Policy is the hysteresis as a routes.Policy.
func (c Config) Policy() routes.Policy {
	p := routes.DefaultPolicy()
	p.Margin, p.Hold = c.Hysteresis.Margin, time.Duration(c.Hysteresis.Hold)
	return p
}

// Validate checks the section (after SetDefaults).
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if c.Agent && c.Cgroup == "" {
		errs = append(errs, errors.New("steer.cgroup: the application's cgroup v2 directory is required for the agent"))
	}
	if err := wire.ValidToken(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("steer.bucket: %w", err))
	}
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("steer.services: at least one service"))
	}
	if _, _, err := c.Tables(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Tables returns the services and the allowed backends
// (allowed[cluster][member]) of the configuration, checked.
func (c Config) Tables() ([]routes.Service, map[string]map[string]netip.AddrPort, error) {
	var errs []error
	allowed := map[string]map[string]netip.AddrPort{}
	for cl, cc := range c.Clusters {
		if err := wire.ValidToken(cl); err != nil {
			errs = append(errs, fmt.Errorf("steer.clusters: %w", err))
		}
		allowed[cl] = map[string]netip.AddrPort{}
		for m, a := range cc.Members {
			ap, err := netip.ParseAddrPort(a)
			if err != nil {
				errs = append(errs, fmt.Errorf("steer.clusters.%s.members.%s: %q: want ip:port", cl, m, a))
				continue
			}
			allowed[cl][m] = ap
		}
	}
	var svcs []routes.Service
	names, addrs := map[string]bool{}, map[netip.AddrPort]bool{}
	for i, s := range c.Services {
		at := fmt.Sprintf("steer.services[%d]", i)
		if err := wire.ValidToken(s.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %w", at, err))
		} else if names[s.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q listed twice", at, s.Name))
		}
		names[s.Name] = true
		ap, err := netip.ParseAddrPort(s.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %q: want ip:port", at, s.Address))
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if addrs[ap] {
			errs = append(errs, fmt.Errorf("%s.address: %s listed twice", at, ap))
		}
		addrs[ap] = true
		role := routes.Role(s.Role)
		if role != routes.ReadWrite && role != routes.ReadOnly {
			errs = append(errs, fmt.Errorf("%s.role: %q: want rw or ro", at, s.Role))
		}
		if len(s.Clusters) == 0 || (role == routes.ReadWrite && len(s.Clusters) != 1) {
			errs = append(errs, fmt.Errorf("%s.clusters: a rw service names one cluster, a ro service one or more", at))
		}
		for _, cl := range s.Clusters {
			if _, ok := c.Clusters[cl]; !ok {
				errs = append(errs, fmt.Errorf("%s.clusters: %q is not under steer.clusters", at, cl))
			}
		}
		svcs = append(svcs, routes.Service{Name: s.Name, Role: role, Address: ap, Clusters: s.Clusters})
	}
	return svcs, allowed, errors.Join(errs...)
}

// backendIDs numbers the configured members 1.. in a stable order, for
// the datapath's counters.
func backendIDs(allowed map[string]map[string]netip.AddrPort) (map[string]uint32, []string) {
	var keys []string
	for cl, ms := range allowed {
		for m := range ms {
			keys = append(keys, cl+"/"+m)
		}
	}
	sort.Strings(keys)
	ids := map[string]uint32{}
	for i, k := range keys {
		ids[k] = uint32(i + 1)
	}
	return ids, keys
}
