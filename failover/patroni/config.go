package patroni

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/mciv/mciv/failover"
)

// Defaults. The POST timeout is long because Patroni answers a switchover
// only after it saw the new leader or gave up (up to 2*max(10, loop_wait)
// seconds plus 2 s of candidate checks).
const (
	DefaultRequestTimeout  = 45 * time.Second
	DefaultTopologyTimeout = 5 * time.Second
	DefaultConfirmTimeout  = 60 * time.Second
	DefaultPollInterval    = 500 * time.Millisecond
)

// Config configures a Driver for one Patroni cluster.
type Config struct {
	// Cluster is the Patroni scope. Requests for another cluster are
	// refused; empty accepts any (single-cluster tools and tests).
	Cluster string
	// Endpoints are base URLs of members' REST APIs ("https://10.0.0.1:8008").
	// GET /cluster is read from the first that answers.
	Endpoints []string
	// Username and Password for HTTP basic auth (restapi.authentication).
	Username string
	Password string
	// TLS for https endpoints.
	TLS failover.TLSConfig
	// RequestTimeout bounds one POST (default DefaultRequestTimeout; keep it
	// at 30 s or more in production).
	RequestTimeout time.Duration
	// TopologyTimeout bounds one GET /cluster.
	TopologyTimeout time.Duration
	// ConfirmTimeout bounds the polling of GET /cluster that confirms an
	// outcome after the POST.
	ConfirmTimeout time.Duration
	// PollInterval is the pause between two confirmation reads.
	PollInterval time.Duration
	// PostToEndpoint sends the POST to the endpoint that served the topology
	// instead of the candidate's own api_url (use it when members'
	// advertised api_urls are not reachable from the actuator). By default
	// the candidate's API receives it: the candidate must be healthy for the
	// switchover to succeed anyway, while the old primary may be the
	// degraded node.
	PostToEndpoint bool
	// Logger receives one line per decision; nil discards.
	Logger *slog.Logger
}

// LogValue keeps the password out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("cluster", c.Cluster),
		slog.Any("endpoints", c.Endpoints),
		slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Bool("tls_insecure", c.TLS.InsecureSkipVerify),
	)
}

func (c *Config) setDefaults() {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.TopologyTimeout <= 0 {
		c.TopologyTimeout = DefaultTopologyTimeout
	}
	if c.ConfirmTimeout <= 0 {
		c.ConfirmTimeout = DefaultConfirmTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("patroni: no endpoints configured")
	}
	for i, e := range c.Endpoints {
		u, err := url.Parse(e)
		if err != nil {
			return fmt.Errorf("patroni: endpoint %d: %w", i, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("patroni: endpoint %d %q: want http(s)://host:port", i, e)
		}
		if u.User != nil {
			return fmt.Errorf("patroni: endpoint %d: put credentials in Username/Password, not in the URL", i)
		}
		c.Endpoints[i] = strings.TrimRight(e, "/")
	}
	return nil
}
