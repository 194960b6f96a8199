package steer

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/mciv/mciv/steer/routes"
)

// DefaultBucket is the JetStream KV bucket of routes, one key per service.
const DefaultBucket = "MCIV_ROUTES"

// DefaultLeaseBucket is the KV bucket of the controller lease.
const DefaultLeaseBucket = "MCIV_STEER_LEASE"

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
//	  spread: {max: 8, slack: 1ms}     # ro services: spread connects over the members within the margin
//	  pin_dir: /sys/fs/bpf/mciv/steer/payments-app  # default: from the cgroup's name
//	  lease_ttl: 3s                    # one controller per deployment writes routes
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
	// Spread tunes how read-only services spread connects over members.
	Spread Spread `yaml:"spread"`
	// PinDir is the bpffs directory the agent pins its maps and links in,
	// so steering outlives it (default /sys/fs/bpf/mciv/steer/<cgroup
	// path below the cgroup v2 mount, "/" as "-">); "none" pins nothing.
	PinDir string `yaml:"pin_dir"`
	// LeaseTTL is how long the controller's lease on the routes lasts
	// without renewal (default 3s): another controller takes over after it.
	LeaseTTL yamltime.Duration `yaml:"lease_ttl"`
	// LeaseBucket is the KV bucket of the controller lease (default MCIV_STEER_LEASE).
	LeaseBucket string `yaml:"lease_bucket"`
}

// Spread is routes.Policy's spread in YAML.
type Spread struct {
	// Max members per read-only route (default 8; 1: one member, no spread).
	Max int `yaml:"max"`
	// Slack is added to the margin (default 1ms).
	Slack yamltime.Duration `yaml:"slack"`
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
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = yamltime.Duration(3 * time.Second)
	}
	if c.LeaseBucket == "" {
		c.LeaseBucket = DefaultLeaseBucket
	}
	if c.Spread.Max <= 0 {
		c.Spread.Max = routes.MaxSpread
	}
	if c.Spread.Slack <= 0 {
		c.Spread.Slack = yamltime.Duration(time.Millisecond)
	}
	if c.PinDir == "" && c.Cgroup != "" {
		c.PinDir = DefaultPinDir(c.Cgroup)
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
	p.Spread, p.Slack = c.Spread.Max, time.Duration(c.Spread.Slack)
	return p
}

// PinRoot is where agents pin their steering, one directory per cgroup.
const PinRoot = "/sys/fs/bpf/mciv/steer"

// DefaultPinDir is the pin directory of an agent steering cgroup: the
// cgroup's path below the cgroup v2 mount with "/" as "-", under PinRoot.
func DefaultPinDir(cgroup string) string {
	rel := strings.Trim(cgroup, "/")
	if mp, err := CgroupV2Mount(); err == nil {
		if r, ok := strings.CutPrefix(cgroup, strings.TrimSuffix(mp, "/")+"/"); ok {
			rel = r
		}
	}
	rel = strings.ReplaceAll(strings.Trim(rel, "/"), "/", "-")
	if rel == "" || rel == "." || rel == ".." {
		rel = "root"
	}
	return PinRoot + "/" + rel
}

// Pins returns the pin directory, "" when pinning is off (pin_dir: none).
func (c Config) Pins() string {
	if c.PinDir == "none" {
		return ""
	}
	return c.PinDir
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
	if err := wire.ValidToken(c.LeaseBucket); err != nil {
		errs = append(errs, fmt.Errorf("steer.lease_bucket: %w", err))
	}
	if c.Spread.Max > routes.MaxSpread {
		errs = append(errs, fmt.Errorf("steer.spread.max: %d, at most %d", c.Spread.Max, routes.MaxSpread))
	}
	if c.PinDir != "none" && c.PinDir != "" && !strings.HasPrefix(c.PinDir, "/") {
		errs = append(errs, fmt.Errorf("steer.pin_dir: %q: want an absolute path in bpffs, or none", c.PinDir))
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
