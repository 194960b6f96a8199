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

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/escalation"
	"github.com/mciv/mciv/notifier/phone/twilio"
	"github.com/mciv/mciv/notifier/route"
	slacknotify "github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/voice"
	"github.com/mciv/mciv/steer"
	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "30s", "500ms", "2m" in YAML.
type Duration = yamltime.Duration

// Config is the whole configuration of mciv. It only lists the sections:
// each part owns the type of its own section, its defaults and its checks.
type Config struct {
	// Cluster names the database cluster this host belongs to.
	Cluster string `yaml:"cluster"`
	// Host names this host; default: the hostname.
	Host string `yaml:"host"`
	// DataDir holds the embedded NATS server's JetStream files.
	DataDir string `yaml:"data_dir"`
	// NATS says where the bus is (internal/bus).
	NATS bus.Section `yaml:"nats"`
	// Metrics is the Prometheus endpoint of this process.
	Metrics Metrics `yaml:"metrics"`
	// Collector is the eBPF collector (collector).
	Collector collector.Section `yaml:"collector"`
	// Analyzer evaluates the rules (analyzer).
	Analyzer analyzer.Section `yaml:"analyzer"`
	// Notifier is Marvel's routing, grouping and inhibition (notifier).
	Notifier notifier.Section `yaml:"notifier"`
	// Slack is the Slack integration (notifier/slack).
	Slack slacknotify.Section `yaml:"slack"`
	// Voice speaks critical alerts (notifier/voice).
	Voice voice.Config `yaml:"voice"`
	// OnCall is the on-call schedule and escalation policies (notifier/escalation).
	OnCall escalation.Config `yaml:"oncall"`
	// Twilio places escalation calls (notifier/phone/twilio).
	Twilio twilio.Config `yaml:"twilio"`
	// Failover configures the guarded failover actuator (off by default).
	Failover actuator.Config `yaml:"failover"`
	// Steer is connection steering (steer): the agent and the route controller.
	Steer steer.Config `yaml:"steer"`
}

// Metrics configures the Prometheus endpoint: the one section the
// composition root owns.
type Metrics struct {
	// Listen is host:port of /metrics; empty disables it.
	Listen string `yaml:"listen"`
}

// Default returns the configuration used when no file is given.
func Default() Config {
	host, _ := os.Hostname()
	return Config{
		Cluster:   "default",
		Host:      host,
		DataDir:   "./data",
		NATS:      bus.Section{Listen: "127.0.0.1:4222"},
		Metrics:   Metrics{Listen: "127.0.0.1:9464"},
		Collector: collector.DefaultSection(),
		Notifier:  notifier.DefaultSection(),
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
		"MCIV_SLACK_APP_TOKEN":      &cfg.Slack.SocketMode.AppToken,
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
	if err := c.Collector.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.NATS.URL == "" && c.DataDir == "" {
		errs = append(errs, fmt.Errorf("data_dir is required for the embedded NATS server"))
	}
	if err := c.Slack.Validate(); err != nil {
		errs = append(errs, err)
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
	if err := c.Notifier.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Failover.Enabled {
		f := c.Failover
		f.SetDefaults()
		if err := f.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Steer.Enabled() {
		s := c.Steer
		s.SetDefaults()
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
