package slack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/nats-io/nats.go/jetstream"
	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// SocketModeConfig connects Slack's buttons and the /mciv command over
// Socket Mode: mciv opens an outbound WebSocket to Slack with an
// app-level token, so no endpoint has to be reachable from the internet.
type SocketModeConfig struct {
	// AppToken is the app-level token (xapp-...) with the
	// connections:write scope (or MCIV_SLACK_APP_TOKEN).
	AppToken string `yaml:"app_token"`
}

// LogValue never shows the token.
func (c SocketModeConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("app_token", redactToken(c.AppToken)))
}

// NewSocketInteractions returns the handler of presses and commands for
// Socket Mode alone (no HTTP endpoint, so no signing secret: it gets a
// random one, so that no HTTP request can ever verify); now may be nil
// (time.Now), logger nil.
func NewSocketInteractions(js jetstream.JetStream, log *nflog.Log, silences *silence.Store, now func() time.Time, logger *slog.Logger) (*Interactions, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("slack socket mode: %w", err)
	}
	return NewInteractions(hex.EncodeToString(secret), js, log, silences, now, logger)
}

// SocketModeOptions configures a SocketMode connection.
type SocketModeOptions struct {
	// AppToken is the app-level token (xapp-...). Required.
	AppToken string
	// BotToken is the bot token (xoxb-...); auth.test with it tells the
	// workspace whose payloads are accepted. Required.
	BotToken string
	// APIURL is as in Config.
	APIURL string
	// Interactions acts on presses and commands. Required.
	Interactions *Interactions
	// Failover is the switch `/mciv failover pause` flips; nil refuses it.
	Failover FailoverSwitch
	// RetryMin and RetryMax bound the wait before reconnecting after a
	// failed connection. Defaults 1s and 1m.
	RetryMin, RetryMax time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// SocketMode receives button presses and slash commands over Slack's
// Socket Mode and hands them to the same handling as the HTTP endpoint
// (Interactions.HandleCallback and Interactions.Command). Payloads of
// another workspace or app than the connection's are refused.
type SocketMode struct {
	opts   SocketModeOptions
	api    *slackgo.Client
	client *socketmode.Client
	logger *slog.Logger

	mu     sync.Mutex
	appID  string // from the hello message
	teamID string // from auth.test
}

// NewSocketMode returns a Socket Mode connection; Run connects it.
func NewSocketMode(opts SocketModeOptions) (*SocketMode, error) {
	if !strings.HasPrefix(opts.AppToken, "xapp-") {
		return nil, errors.New("slack socket mode: an app-level token (xapp-...) is required")
	}
	if opts.BotToken == "" || opts.Interactions == nil {
		return nil, errors.New("slack socket mode: a bot token and the interactions handler are required")
	}
	base, err := apiURL(opts.APIURL)
	if err != nil {
		return nil, err
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(time.Minute, opts.RetryMin)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	api := slackgo.New(opts.BotToken, slackgo.OptionAPIURL(base), slackgo.OptionAppLevelToken(opts.AppToken),
		slackgo.OptionHTTPClient(&http.Client{Timeout: 15 * time.Second}))
	return &SocketMode{
		opts: opts, api: api, client: socketmode.New(api),
		logger: logger.With("part", "slack-socket-mode"),
	}, nil
}

// Run connects, handles what arrives, and reconnects with backoff after a
// failure, until ctx ends; then it returns nil.
func (s *SocketMode) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.events(ctx)
	}()
	defer func() { cancel(); <-done }()

	wait := s.opts.RetryMin
	for ctx.Err() == nil {
		if s.ids("", "") == "" {
			if resp, err := s.api.AuthTestContext(ctx); err == nil {
				s.ids("", resp.TeamID)
			} else if ctx.Err() == nil {
				s.logger.Warn("slack auth.test failed; retrying", "err", err, "retry_in", wait)
				if !sleepCtx(ctx, wait) {
					break
				}
				wait = min(2*wait, s.opts.RetryMax)
				continue
			}
		}
		started := time.Now()
		err := s.client.RunContext(ctx)
		if ctx.Err() != nil {
			break
		}
		if time.Since(started) > s.opts.RetryMax {
			wait = s.opts.RetryMin
		}
		s.logger.Warn("slack socket mode connection ended; reconnecting", "err", err, "retry_in", wait)
		if !sleepCtx(ctx, wait) {
			break
		}
		wait = min(2*wait, s.opts.RetryMax)
	}
	return nil
}

// events handles the client's events until ctx ends.
func (s *SocketMode) events(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case evt, ok := <-s.client.Events:
			if !ok {
				return
			}
			s.handle(ctx, evt)
		}
	}
}

func (s *SocketMode) handle(ctx context.Context, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnected:
		s.logger.Info("slack socket mode connected")
	case socketmode.EventTypeHello:
		if evt.Request != nil && evt.Request.ConnectionInfo.AppID != "" {
			s.ids(evt.Request.ConnectionInfo.AppID, "")
		}
	case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth:
		s.logger.Warn("slack socket mode connection error", "event", evt.Type)
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slackgo.InteractionCallback)
		if !ok || evt.Request == nil {
			return
		}
		// Slack wants the envelope acknowledged within 3 s, and does not
		// redeliver interactions: acknowledge first, then act.
		s.ack(ctx, evt.Request, nil)
		if err := s.verify(cb.Team.ID, cb.APIAppID); err != nil {
			s.logger.Warn("refusing an interaction", "reason", err, "user", cb.User.ID)
			return
		}
		if err := s.opts.Interactions.HandleCallback(ctx, &cb); err != nil {
			s.logger.Error("button press over socket mode not handled", "user", cb.User.ID, "err", err)
		}
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slackgo.SlashCommand)
		if !ok || evt.Request == nil {
			return
		}
		if err := s.verify(cmd.TeamID, cmd.APIAppID); err != nil {
			s.logger.Warn("refusing a slash command", "reason", err, "user", cmd.UserID)
			s.ack(ctx, evt.Request, map[string]any{"response_type": "ephemeral", "text": "mciv refused this command."})
			return
		}
		text := s.opts.Interactions.Command(ctx, cmd, s.opts.Failover)
		s.ack(ctx, evt.Request, map[string]any{"response_type": "in_channel", "text": text})
	}
}

// verify refuses a payload of another workspace or app than ours.
func (s *SocketMode) verify(team, app string) error {
	s.mu.Lock()
	ourTeam, ourApp := s.teamID, s.appID
	s.mu.Unlock()
	if ourTeam == "" {
		return errors.New("the workspace is not known yet")
	}
	if team != ourTeam {
		return fmt.Errorf("workspace %q is not ours", team)
	}
	if ourApp != "" && app != "" && app != ourApp {
		return fmt.Errorf("app %q is not ours", app)
	}
	return nil
}

// ids records the app and team IDs given (non-empty) and returns the
// team ID.
func (s *SocketMode) ids(app, team string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if app != "" {
		s.appID = app
	}
	if team != "" {
		s.teamID = team
	}
	return s.teamID
}

func (s *SocketMode) ack(ctx context.Context, req *socketmode.Request, payload any) {
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := s.client.AckCtx(actx, req.EnvelopeID, payload); err != nil {
		s.logger.Warn("socket mode acknowledgement failed", "err", err)
	}
}

// sleepCtx waits for d or until ctx ends; it reports whether it waited.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
