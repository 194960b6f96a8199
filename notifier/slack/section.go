package slack

import (
	"errors"
	"fmt"
	"strings"
)

// Section is the `slack:` section of mciv's configuration; Slack is on
// when Token and Channel are set.
type Section struct {
	Token   string `yaml:"token"`
	Channel string `yaml:"channel"`
	// APIURL points the client at another Slack-compatible API.
	APIURL string `yaml:"api_url"`
	// Interactivity is the endpoint for the message buttons.
	Interactivity InteractivityConfig `yaml:"interactivity"`
	// SocketMode receives the buttons and /mciv over an outbound
	// WebSocket instead (no public endpoint needed).
	SocketMode SocketModeConfig `yaml:"socket_mode"`
}

// Enabled reports whether Slack is configured.
func (s Section) Enabled() bool { return s.Token != "" && s.Channel != "" }

// String never shows the token.
func (s Section) String() string {
	tok := "unset"
	if s.Token != "" {
		tok = "set"
	}
	return fmt.Sprintf("slack{channel=%q token=%s api_url=%q}", s.Channel, tok, s.APIURL)
}

// Validate checks that the section is whole.
func (s Section) Validate() error {
	var errs []error
	if (s.Token == "") != (s.Channel == "") {
		errs = append(errs, errors.New("slack: set both token and channel, or neither"))
	}
	if s.Interactivity.Listen != "" && s.Interactivity.SigningSecret == "" {
		errs = append(errs, errors.New("slack.interactivity: listen is set but signing_secret (or MCIV_SLACK_SIGNING_SECRET) is not"))
	}
	if t := s.SocketMode.AppToken; t != "" && !strings.HasPrefix(t, "xapp-") {
		errs = append(errs, errors.New("slack.socket_mode.app_token: an app-level token starts with xapp-"))
	}
	return errors.Join(errs...)
}

// Client is the client configuration of this section.
func (s Section) Client() Config {
	return Config{Token: s.Token, Channel: s.Channel, APIURL: s.APIURL}
}
