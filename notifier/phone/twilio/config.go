package twilio

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Config is the `twilio:` section of mciv's configuration:
//
//	twilio:
//	  account_sid: ACxxxxxxxx
//	  auth_token: ...                      # or MCIV_TWILIO_AUTH_TOKEN
//	  from: "+15551230000"                 # a Twilio number of the account
//	  public_url: https://mciv.example.com # where Twilio reaches our callbacks
//	  listen: 0.0.0.0:8089                 # where the callback endpoint listens
//
// Twilio is used when AccountSID, AuthToken and From are set. The secrets
// never appear in String, LogValue or errors.
type Config struct {
	AccountSID string `yaml:"account_sid"`
	AuthToken  string `yaml:"auth_token"`
	// From is the caller id: a number of the Twilio account, E.164.
	From string `yaml:"from"`
	// PublicURL is the scheme and host (and optional path prefix) under
	// which Twilio reaches this process's callback endpoint; the callbacks
	// are PublicURL/twilio/gather and PublicURL/twilio/status. Signatures
	// are checked against these URLs.
	PublicURL string `yaml:"public_url"`
	// Listen is host:port of the callback endpoint.
	Listen string `yaml:"listen"`
	// Timeout bounds one REST request; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// RingTimeout is how long a call rings before Twilio gives up
	// (no-answer); default 30s.
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// SayVoice and Language are the attributes of <Say> ("Polly.Joanna",
	// "en-US"); empty uses Twilio's defaults.
	SayVoice string `yaml:"say_voice"`
	Language string `yaml:"language"`
}

// Defaults.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultRingTimeout = 30 * time.Second
)

// Enabled reports whether Twilio is configured.
func (c Config) Enabled() bool { return c.AccountSID != "" && c.AuthToken != "" && c.From != "" }

// String shows the configuration without its secret.
func (c Config) String() string {
	tok := "unset"
	if c.AuthToken != "" {
		tok = "set"
	}
	return fmt.Sprintf("twilio{account_sid=%s auth_token=%s from=%q public_url=%q}", maskSID(c.AccountSID), tok, c.From, c.PublicURL)
}

// LogValue keeps the secret out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// maskSID shows only the start of an account SID: "AC12…".
func maskSID(s string) string {
	if s == "" {
		return "unset"
	}
	if len(s) <= 4 {
		return "…"
	}
	return s[:4] + "…"
}

// Validate checks a configuration that is meant to be used (some field
// set); an empty section is valid and disabled.
func (c Config) Validate() error {
	if c == (Config{}) {
		return nil
	}
	var errs []error
	if c.AccountSID == "" || c.AuthToken == "" || c.From == "" {
		errs = append(errs, errors.New("twilio: set account_sid, auth_token (or MCIV_TWILIO_AUTH_TOKEN) and from"))
	}
	if c.AccountSID != "" && !strings.HasPrefix(c.AccountSID, "AC") {
		errs = append(errs, errors.New("twilio.account_sid must start with AC"))
	}
	if c.From != "" && !strings.HasPrefix(c.From, "+") {
		errs = append(errs, fmt.Errorf("twilio.from %q: want an E.164 number (+15551230000)", c.From))
	}
	if c.PublicURL == "" {
		errs = append(errs, errors.New("twilio.public_url is required: Twilio posts key presses and call status there"))
	} else if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("twilio.public_url %q: want https://host[/prefix]", c.PublicURL))
	}
	if c.Timeout < 0 || c.RingTimeout < 0 {
		errs = append(errs, errors.New("twilio: timeouts must not be negative"))
	}
	return errors.Join(errs...)
}
