package actuator

import (
	"errors"
	"fmt"
	"time"

	"github.com/mciv/mciv/internal/yamltime"
)

// Duration is a time.Duration written as "30s", "500ms", "2m" in YAML.
type Duration = yamltime.Duration

// WhenPrimary is the only Policy.When the actuator knows: act only when the
// alert's host is the cluster's current primary.
const WhenPrimary = "primary"

// Policy is what a rule's `actions: [{failover: {...}}]` asks for.
type Policy struct {
	// When says which host the alert must be about; only "primary".
	When string `yaml:"when"`
	// Approval waits for a human's approve Ack (Slack button, CLI) before
	// acting, for at most Config.ApprovalTimeout.
	Approval bool `yaml:"approval"`
	// DryRun decides and audits without acting, for this rule.
	DryRun bool `yaml:"dry_run"`
}

// SignalThreshold says when one series in a host's sample batch shows that
// host's view of a peer as degraded: the series carries signal Signal, a
// "peer" label naming the peer, and a value (a histogram's mean) at least
// Min.
type SignalThreshold struct {
	Signal string  `yaml:"signal"`
	Min    float64 `yaml:"min"`
}

// PatroniCluster says how to reach one cluster's Patroni REST API.
type PatroniCluster struct {
	Endpoints []string `yaml:"endpoints"`
	Username  string   `yaml:"username"`
	// Password; prefer PasswordEnv so that it stays out of the file.
	Password    string `yaml:"password"`
	PasswordEnv string `yaml:"password_env"`
	// CAFile, CertFile, KeyFile and InsecureSkipVerify for https endpoints.
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// String never shows the password.
func (p PatroniCluster) String() string {
	pw := "unset"
	if p.Password != "" || p.PasswordEnv != "" {
		pw = "set"
	}
	return fmt.Sprintf("patroni{endpoints=%v user=%q password=%s}", p.Endpoints, p.Username, pw)
}

// Config configures the actuator. Every safeguard is a field; zero values
// take the defaults of SetDefaults.
type Config struct {
	// Enabled runs the actuator (off by default: automation is opt-in).
	Enabled bool `yaml:"enabled"`
	// DryRun decides and audits every failover without acting.
	DryRun bool `yaml:"dry_run"`
	// Durable is the actuator's own JetStream consumer on MCIV_ALERTS.
	Durable string `yaml:"durable"`
	// Rules maps rule names to the failover they ask for, until rules carry
	// `actions: [{failover: ...}]` themselves.
	Rules map[string]Policy `yaml:"rules"`
	// Clusters maps cluster names to their Patroni API.
	Clusters map[string]PatroniCluster `yaml:"clusters"`
	// Hosts maps mciv host names to Patroni member names where they differ.
	Hosts map[string]string `yaml:"hosts"`

	// Persist is how long an alert must have been firing (since StartsAt).
	Persist Duration `yaml:"persist"`
	// EvidenceWait is how long after the alert persisted the actuator keeps
	// looking for corroboration (every Recheck) before refusing.
	EvidenceWait Duration `yaml:"evidence_wait"`
	Recheck      Duration `yaml:"recheck"`
	// Window is how far back vantage-point evidence counts.
	Window Duration `yaml:"window"`
	// MinVantage is how many vantage points other than the primary itself
	// must see it degraded: other hosts, and Patroni's own view counting as
	// one. Never less than 1.
	MinVantage int `yaml:"min_vantage"`
	// MinDegradedBatches is how many of a host's batches within Window must
	// show the primary degraded for that host to count as a vantage point.
	MinDegradedBatches int `yaml:"min_degraded_batches"`
	// Signals say what a degraded view of a peer looks like.
	Signals []SignalThreshold `yaml:"signals"`
	// PeerMatch is "addr_port" (the peer label must equal the primary's
	// host:port) or "addr" (its address alone).
	PeerMatch string `yaml:"peer_match"`
	// PatroniView counts Patroni's view (primary not running, or every
	// replica lagging at least PatroniLagBytes) as a vantage point.
	PatroniView     *bool `yaml:"patroni_view"`
	PatroniLagBytes int64 `yaml:"patroni_lag_bytes"`
	// SeenWindow: a host whose last sample batch is older is not seen. When
	// no host of the cluster is seen, the actuator assumes it is cut off.
	SeenWindow Duration `yaml:"seen_window"`
	// MaxLagBytes bounds the candidate's replication lag.
	MaxLagBytes int64 `yaml:"max_lag_bytes"`
	// Cooldown is the minimum time between two actions on one cluster.
	Cooldown Duration `yaml:"cooldown"`
	// LeaseTTL is how long the actuator lease lives without renewal; it
	// bounds one action. LeaseMargin is how long before it expires (by our
	// own clock) the actuator stops acting under it.
	LeaseTTL    Duration `yaml:"lease_ttl"`
	LeaseMargin Duration `yaml:"lease_margin"`
	// ApprovalTimeout is how long a rule with approval waits for a human.
	ApprovalTimeout Duration `yaml:"approval_timeout"`
	// Approvers may approve a failover: Slack user ids (U0ALICE). Empty in
	// mciv up means everyone of the on-call section with a Slack id; with
	// nobody listed, every approval is refused.
	Approvers []string `yaml:"approvers"`
	// OperatorApprovals lets an operator's `mciv ack --approve` approve,
	// signed by the operator's own credential and in its own name, which
	// must then be listed in Approvers too. Off: on a secured bus only
	// the notifier's Slack button and phone approve.
	OperatorApprovals bool `yaml:"operator_approvals"`
	// KVBucket prefixes the JetStream KV buckets (lease and state).
	KVBucket string `yaml:"kv_bucket"`
}

// Defaults.
const (
	DefaultDurable         = "mciv-actuator"
	DefaultPersist         = 10 * time.Second
	DefaultWindow          = 30 * time.Second
	DefaultEvidenceWait    = 10 * time.Second
	DefaultRecheck         = time.Second
	DefaultMinVantage      = 2
	DefaultMinDegraded     = 2
	DefaultSeenWindow      = 15 * time.Second
	DefaultMaxLagBytes     = 1 << 20
	DefaultPatroniLagBytes = 16 << 20
	DefaultCooldown        = 30 * time.Minute
	DefaultLeaseTTL        = 2 * time.Minute
	DefaultLeaseMargin     = 15 * time.Second
	DefaultApprovalTimeout = 10 * time.Minute
	DefaultKVBucket        = "mciv_failover"
)

// DefaultSignals are the degraded-view signals used when none are set.
func DefaultSignals() []SignalThreshold {
	return []SignalThreshold{
		{Signal: "tcp_retransmits_total", Min: 1},
		{Signal: "tcp_connect_errors_total", Min: 1},
		// Mean smoothed RTT towards the peer, from the collector's
		// tcp_probe histogram: 50 ms is far outside a healthy LAN.
		{Signal: "tcp_rtt_seconds", Min: 0.05},
	}
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	def := func(d *Duration, v time.Duration) {
		if *d <= 0 {
			*d = Duration(v)
		}
	}
	def(&c.Persist, DefaultPersist)
	def(&c.Window, DefaultWindow)
	def(&c.EvidenceWait, DefaultEvidenceWait)
	def(&c.Recheck, DefaultRecheck)
	def(&c.SeenWindow, DefaultSeenWindow)
	def(&c.Cooldown, DefaultCooldown)
	def(&c.LeaseTTL, DefaultLeaseTTL)
	def(&c.LeaseMargin, DefaultLeaseMargin)
	def(&c.ApprovalTimeout, DefaultApprovalTimeout)
	if c.MinVantage <= 0 {
		c.MinVantage = DefaultMinVantage
	}
	if c.MinDegradedBatches <= 0 {
		c.MinDegradedBatches = DefaultMinDegraded
	}
	if len(c.Signals) == 0 {
		c.Signals = DefaultSignals()
	}
	if c.PeerMatch == "" {
		c.PeerMatch = "addr_port"
	}
	if c.PatroniView == nil {
		on := true
		c.PatroniView = &on
	}
	if c.PatroniLagBytes <= 0 {
		c.PatroniLagBytes = DefaultPatroniLagBytes
	}
	if c.MaxLagBytes <= 0 {
		c.MaxLagBytes = DefaultMaxLagBytes
	}
	if c.KVBucket == "" {
		c.KVBucket = DefaultKVBucket
	}
}

// Validate checks a configuration after SetDefaults.
func (c *Config) Validate() error {
	var errs []error
	for name, p := range c.Rules {
		if p.When != "" && p.When != WhenPrimary {
			errs = append(errs, fmt.Errorf("failover rule %q: when %q: only %q is supported", name, p.When, WhenPrimary))
		}
	}
	if c.PeerMatch != "addr_port" && c.PeerMatch != "addr" {
		errs = append(errs, fmt.Errorf("failover peer_match %q: want addr_port or addr", c.PeerMatch))
	}
	if c.LeaseMargin >= c.LeaseTTL {
		errs = append(errs, fmt.Errorf("failover lease_margin %s must be shorter than lease_ttl %s", c.LeaseMargin.D(), c.LeaseTTL.D()))
	}
	for name, pc := range c.Clusters {
		if len(pc.Endpoints) == 0 {
			errs = append(errs, fmt.Errorf("failover cluster %q: no patroni endpoints", name))
		}
	}
	// Rules may ask for failover in their own `actions`, so an empty
	// Rules map here is not an error; startFailover warns when no rule at
	// all asks for it.
	return errors.Join(errs...)
}

// member maps an mciv host name to a Patroni member name.
func (c *Config) member(host string) string {
	if m, ok := c.Hosts[host]; ok {
		return m
	}
	return host
}

// host maps a Patroni member name back to an mciv host name.
func (c *Config) host(member string) string {
	for h, m := range c.Hosts {
		if m == member {
			return h
		}
	}
	return member
}
