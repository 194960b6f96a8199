// Package config loads mciv's YAML configuration: one file for every
// component, strict (unknown keys are errors), with defaults and a few
// environment overrides for secrets.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/mciv/mciv/notifier/escalation"
	"github.com/mciv/mciv/notifier/inhibit"
	"github.com/mciv/mciv/notifier/phone/twilio"
	"github.com/mciv/mciv/notifier/route"
	slacknotify "github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/voice"
	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "30s", "500ms", "2m" in YAML.
type Duration = yamltime.Duration

// Config is the whole configuration of mciv.
type Config struct {
	// Cluster names the database cluster this host belongs to.
	Cluster string `yaml:"cluster"`
	// Host names this host; default: the hostname.
	Host string `yaml:"host"`
	// DataDir holds the embedded NATS server's JetStream files.
	DataDir   string    `yaml:"data_dir"`
	NATS      NATS      `yaml:"nats"`
	Metrics   Metrics   `yaml:"metrics"`
	Collector Collector `yaml:"collector"`
	Analyzer  Analyzer  `yaml:"analyzer"`
	Notifier  Notifier  `yaml:"notifier"`
	Slack     Slack     `yaml:"slack"`
	// Voice speaks critical alerts (notifier/voice).
	Voice voice.Config `yaml:"voice"`
	// OnCall is the on-call schedule and escalation policies (notifier/escalation).
	OnCall escalation.Config `yaml:"oncall"`
	// Twilio places escalation calls (notifier/phone/twilio).
	Twilio twilio.Config `yaml:"twilio"`
	// Failover configures the guarded failover actuator (off by default).
	Failover actuator.Config `yaml:"failover"`
}

// NATS says where the message bus is.
type NATS struct {
	// URL of an existing NATS server or cluster; empty runs the embedded server.
	URL string `yaml:"url"`
	// Listen is where the embedded server accepts clients.
	Listen string `yaml:"listen"`
	// Creds is a NATS credentials file (per-host user).
	Creds string `yaml:"creds"`
	// NKey is a file with an nkey seed.
	NKey string `yaml:"nkey"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is host:port of /metrics; empty disables it.
	Listen string `yaml:"listen"`
}

// Collector configures the eBPF collector.
type Collector struct {
	Enabled  *bool    `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
	// MaxEventsPerInterval bounds the notable events one host publishes per interval.
	MaxEventsPerInterval int `yaml:"max_events_per_interval"`
	// NetNS restricts the TCP signals to one network namespace (a path like
	// /var/run/netns/NAME or /proc/PID/ns/net), which then counts as this
	// host: one collector per namespace (containers, test hosts).
	NetNS string `yaml:"netns"`
	// PostgresProbes is how PostgreSQL query latency is measured: "socket"
	// (default: at the server's TCP sockets) or "usdt" (its USDT probes).
	PostgresProbes string `yaml:"postgres_probes"`
}

// Analyzer configures rule evaluation.
type Analyzer struct {
	Enabled *bool `yaml:"enabled"`
	// Rules are files or directories of rule files; empty uses the built-in defaults.
	Rules []string `yaml:"rules"`
}

// Notifier configures Marvel.
type Notifier struct {
	Enabled *bool `yaml:"enabled"`
	// Durable is the JetStream consumer name shared by notifier replicas.
	Durable string `yaml:"durable"`
	// Route is the routing tree (label matchers to receivers, grouping);
	// absent: every alert to the default receiver (slack.channel).
	Route *route.Route `yaml:"route"`
	// Receivers are the destinations routes name.
	Receivers []route.Receiver `yaml:"receivers"`
	// InhibitRules mute alerts made redundant by others; absent: a
	// critical alert mutes the warnings of the same host; [] for none.
	InhibitRules []inhibit.Rule `yaml:"inhibit_rules"`
}

// Slack configures the Slack integration; it is on when Token and Channel are set.
type Slack struct {
	Token   string `yaml:"token"`
	Channel string `yaml:"channel"`
	// APIURL points the client at another Slack-compatible API.
	APIURL string `yaml:"api_url"`
	// Interactivity is the endpoint for the message buttons.
	Interactivity slacknotify.InteractivityConfig `yaml:"interactivity"`
}

// Enabled reports whether Slack is configured.
func (s Slack) Enabled() bool { return s.Token != "" && s.Channel != "" }

// String never shows the token.
func (s Slack) String() string {
	tok := "unset"
	if s.Token != "" {
		tok = "set"
	}
	return fmt.Sprintf("slack{channel=%q token=%s api_url=%q}", s.Channel, tok, s.APIURL)
}

// On reports whether an optional switch is on (absent means on).
func On(b *bool) bool { return b == nil || *b }

// Default returns the configuration used when no file is given.
func Default() Config {
	host, _ := os.Hostname()
	return Config{
		Cluster: "default",
		Host:    host,
		DataDir: "./data",
		NATS:    NATS{Listen: "127.0.0.1:4222"},
		Metrics: Metrics{Listen: "127.0.0.1:9464"},
		Collector: Collector{
			Interval:             Duration(time.Second),
			MaxEventsPerInterval: 100,
		},
		Notifier: Notifier{Durable: "mciv-notifier"},
	}
}

// Load reads path (empty: no file) over the defaults, then applies the
// environment (MCIV_SLACK_TOKEN, MCIV_SLACK_CHANNEL, MCIV_SLACK_API_URL,
// MCIV_NATS_URL, MCIV_TWILIO_AUTH_TOKEN), then validates.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		if err := decode(path, data, &cfg); err != nil {
			return cfg, err
		}
	}
	for env, dst := range map[string]*string{
		"MCIV_SLACK_TOKEN":          &cfg.Slack.Token,
		"MCIV_SLACK_CHANNEL":        &cfg.Slack.Channel,
		"MCIV_SLACK_API_URL":        &cfg.Slack.APIURL,
		"MCIV_SLACK_SIGNING_SECRET": &cfg.Slack.Interactivity.SigningSecret,
		"MCIV_NATS_URL":             &cfg.NATS.URL,
		"MCIV_TWILIO_AUTH_TOKEN":    &cfg.Twilio.AuthToken,
	} {
		if v := getenv(env); v != "" {
			*dst = v
		}
	}
	if err := cfg.Validate(); err != nil {
		if _, ok := errors.AsType[*route.Error](err); ok && path != "" {
			return cfg, posError(path, err)
		}
		return cfg, fmt.Errorf("config %s: %w", nameOr(path), err)
	}
	return cfg, nil
}

func nameOr(path string) string {
	if path == "" {
		return "(defaults)"
	}
	return path
}

func decode(path string, data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file keeps the defaults
		}
		return posError(path, err)
	}
	return nil
}

// posError reports an error at a place in the file as file:line:col: msg.
func posError(path string, err error) error {
	if pe, ok := errors.AsType[*route.Error](err); ok {
		return fmt.Errorf("%s:%d:%d: %s", path, pe.Line, pe.Column, pe.Msg)
	}
	return fmt.Errorf("config %s: %w", path, err)
}

// Validate checks the values that the components rely on.
func (c *Config) Validate() error {
	var errs []error
	if err := wire.ValidToken(c.Cluster); err != nil {
		errs = append(errs, fmt.Errorf("cluster: %w", err))
	}
	if err := wire.ValidToken(c.Host); err != nil {
		errs = append(errs, fmt.Errorf("host: %w (set host: in the config)", err))
	}
	if c.Collector.Interval < Duration(10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("collector.interval %s: must be at least 10ms", time.Duration(c.Collector.Interval)))
	}
	if c.Collector.MaxEventsPerInterval < 0 {
		errs = append(errs, fmt.Errorf("collector.max_events_per_interval must not be negative"))
	}
	if c.NATS.URL == "" && c.DataDir == "" {
		errs = append(errs, fmt.Errorf("data_dir is required for the embedded NATS server"))
	}
	if (c.Slack.Token == "") != (c.Slack.Channel == "") {
		errs = append(errs, fmt.Errorf("slack: set both token and channel, or neither"))
	}
	if err := c.Voice.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.OnCall.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Twilio.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := route.New(c.Notifier.Route, c.Notifier.Receivers); err != nil {
		errs = append(errs, err)
	}
	if c.Slack.Interactivity.Listen != "" && c.Slack.Interactivity.SigningSecret == "" {
		errs = append(errs, fmt.Errorf("slack.interactivity: listen is set but signing_secret (or MCIV_SLACK_SIGNING_SECRET) is not"))
	}
	if c.Notifier.Durable == "" {
		errs = append(errs, fmt.Errorf("notifier.durable must not be empty"))
	}
	if c.Failover.Enabled {
		f := c.Failover
		f.SetDefaults()
		if err := f.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
