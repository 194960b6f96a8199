// Package slack is the notifier integration that posts alert state changes
// to a Slack channel with the Web API (chat.postMessage) through
// github.com/slack-go/slack: a text fallback (what notifications and screen
// readers show) plus Block Kit blocks with the rule, state, severity, host,
// cluster, the measured value against the threshold, and the summary and
// description annotations.
//
// Slack rate-limits chat.postMessage to about one message per second per
// channel and answers 429 with Retry-After. The notifier waits that long and
// tries again within the context it was given; server errors and network
// errors are retried with exponential backoff. A rate-limited call was not
// posted, so retrying it cannot duplicate the message.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	slackgo "github.com/slack-go/slack"
)

// Config configures the Slack integration.
type Config struct {
	// Token is a bot token (xoxb-...) with the chat:write scope.
	Token string
	// Channel is a channel ID (C0123...) or name (#oncall) the bot is in.
	Channel string
	// APIURL is the base URL of the Slack Web API; empty means Slack's own
	// (https://slack.com/api/). A URL without a path gets /api/ appended
	// (http://127.0.0.1:1234 and http://127.0.0.1:1234/api/ are the same);
	// any other path is used as it is, with a trailing slash.
	APIURL string
	// MaxAttempts bounds the calls to Slack in one Notify. Default 5.
	MaxAttempts int
	// RetryBackoff is the wait after the first server or network error; it
	// doubles with each further one, up to 30s. Default 1s.
	RetryBackoff time.Duration
	// RequestTimeout bounds one HTTP request to Slack. Default 15s.
	RequestTimeout time.Duration
}

// String describes the configuration without the token.
func (c Config) String() string {
	return fmt.Sprintf("slack(channel=%s, api=%s, token=%s)", c.Channel, c.APIURL, redactToken(c.Token))
}

// LogValue makes slog print the configuration without the token.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("channel", c.Channel),
		slog.String("api_url", c.APIURL),
		slog.String("token", redactToken(c.Token)),
	)
}

// redactToken keeps only the token's type prefix (xoxb, xoxp, ...).
func redactToken(token string) string {
	if token == "" {
		return ""
	}
	if i := strings.IndexByte(token, '-'); i > 0 && i <= 5 {
		return token[:i] + "-***"
	}
	return "***"
}

const maxRetryBackoff = 30 * time.Second

// Notifier posts alerts to one Slack channel. It is safe for concurrent use.
type Notifier struct {
	api     *slackgo.Client
	channel string
	logger  *slog.Logger
	// call retries as Incidents does (no per-channel limiter: channel "").
	call *caller
}

var _ notifier.Notifier = (*Notifier)(nil)

// New returns a Slack notifier for cfg; logger may be nil. It does not call
// Slack: use Check for that.
func New(cfg Config, logger *slog.Logger) (*Notifier, error) {
	if cfg.Token == "" {
		return nil, errors.New("slack: a bot token is required")
	}
	if cfg.Channel == "" {
		return nil, errors.New("slack: a channel is required")
	}
	api, err := cfg.client()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	log := logger.With("integration", "slack", "channel", cfg.Channel)
	return &Notifier{
		api:     api,
		channel: cfg.Channel,
		logger:  log,
		call:    &caller{maxAttempts: cfg.MaxAttempts, backoff: cfg.RetryBackoff, wait: sleep, logger: log},
	}, nil
}

// withDefaults fills in the retry and timeout defaults.
func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 15 * time.Second
	}
	return c
}

// client is the slack-go client for c: its API URL, and an HTTP client
// with c's request timeout (default 15 s).
func (c Config) client() (*slackgo.Client, error) {
	base, err := apiURL(c.APIURL)
	if err != nil {
		return nil, err
	}
	c = c.withDefaults()
	return slackgo.New(c.Token,
		slackgo.OptionAPIURL(base),
		slackgo.OptionHTTPClient(&http.Client{Timeout: c.RequestTimeout}),
	), nil
}

// apiURL turns the configured API URL into the base slack-go appends method
// names to.
func apiURL(raw string) (string, error) {
	if raw == "" {
		return slackgo.APIURL, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Not the URL itself: it might hold credentials.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return "", fmt.Errorf("slack: API URL is not a valid URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("slack: API URL %q: want http(s)://host[:port][/path/]", u.Redacted())
	}
	switch {
	case u.Path == "" || u.Path == "/":
		u.Path = "/api/"
	case !strings.HasSuffix(u.Path, "/"):
		u.Path += "/"
	}
	return u.String(), nil
}

// Name returns "slack".
func (n *Notifier) Name() string { return "slack" }

// Check calls auth.test to verify the token and the API URL.
func (n *Notifier) Check(ctx context.Context) error {
	resp, err := n.api.AuthTestContext(ctx)
	if err != nil {
		return fmt.Errorf("slack: auth.test: %w", err)
	}
	n.logger.Info("slack token works", "team", resp.Team, "user", resp.User)
	return nil
}

// Notify posts one message for a. It retries rate limits, server errors and
// network errors within ctx (at most MaxAttempts calls); when it gives up the
// error says how long to wait (RetryAfter) if Slack said so. Errors Slack
// reports about the request itself (invalid_auth, channel_not_found, ...) are
// returned at once.
func (n *Notifier) Notify(ctx context.Context, a *wire.Alert) error {
	text, blocks := Render(a)
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(text, false), slackgo.MsgOptionBlocks(blocks...)}
	log := n.logger.With("rule", a.Rule, "state", a.State, "fingerprint", a.Fingerprint)
	return n.call.do(ctx, "chat.postMessage to "+n.channel, "", func(ctx context.Context) error {
		ch, ts, err := n.api.PostMessageContext(ctx, n.channel, opts...)
		if err == nil {
			log.Info("slack message posted", "channel_id", ch, "ts", ts)
		}
		return err
	})
}

// retryDelay says whether err is worth another call and how long to wait
// first; retryAfter is set when Slack itself asked for the wait.
func retryDelay(err error, attempt int, base time.Duration) (wait, retryAfter time.Duration, retryable bool) {
	backoff := base
	for i := 1; i < attempt && backoff < maxRetryBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, maxRetryBackoff)

	if rl, ok := errors.AsType[*slackgo.RateLimitedError](err); ok {
		wait = rl.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		return wait, wait, true
	}
	if sc, ok := errors.AsType[slackgo.StatusCodeError](err); ok {
		return backoff, 0, sc.Retryable()
	}
	if se, ok := errors.AsType[slackgo.SlackErrorResponse](err); ok {
		switch se.Err {
		case "ratelimited":
			return max(backoff, time.Second), 0, true
		case "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return backoff, 0, true
		}
		return 0, 0, false
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		// The request did not get an answer: refused, reset, timed out.
		return backoff, 0, true
	}
	return 0, 0, false
}

// retryError is returned when Notify gives up on errors that may go away;
// RetryAfter tells the dispatcher how long Slack asked us to wait.
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string {
	if e.after > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.err, e.after)
	}
	return e.err.Error()
}

func (e *retryError) Unwrap() error { return e.err }

// RetryAfter is how long Slack asked us to wait, or 0.
func (e *retryError) RetryAfter() time.Duration { return e.after }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
