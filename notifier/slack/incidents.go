package slack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/mciv/mciv/internal/auth"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/route"
	"github.com/prometheus/client_golang/prometheus"
	slackgo "github.com/slack-go/slack"
)

// Charter draws the chart of a firing alert: a PNG, or nil when there is
// nothing to draw (no samples seen for it).
type Charter interface {
	Chart(ctx context.Context, a *wire.Alert) ([]byte, error)
}

// IncidentsConfig configures Incidents.
type IncidentsConfig struct {
	// Token, APIURL, MaxAttempts, RetryBackoff and RequestTimeout are as
	// in Config; Channel is the default channel of receivers that name
	// none.
	Config
	// Routes routes alerts to receivers and groups them. Nil means the
	// default tree (everything to the default channel, grouped by
	// alertname, cluster and host).
	Routes *route.Tree
	// Log is the notification log (required).
	Log *nflog.Log
	// Replica names this notifier process in claims (unique per replica).
	Replica string
	// ClaimTTL is how long a replica's claim on a group blocks the others
	// (after a crash mid-send, another replica takes over after it).
	// Default 1m.
	ClaimTTL time.Duration
	// ChannelRate is the messages per second allowed per channel. Default
	// DefaultChannelRate.
	ChannelRate float64
	// Charter, when set, draws a chart uploaded into the thread of every
	// newly firing alert.
	Charter Charter
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Registry gets the Slack call metrics; nil: not registered.
	Registry prometheus.Registerer
	// AckChecker decides which acknowledgements the thread feed shows as
	// made (auth on: by the notifier for a person, or an operator in its
	// own name); nil checks only the cluster. A refused one changes
	// nothing in Slack.
	AckChecker *auth.AckChecker
}

// Incidents is the Slack integration that keeps one living message per
// alert group: it posts the group's message once, updates it in place
// (chat.update) when the group changes or resolves, and replies in its
// thread with each state change, acknowledgement, silence and failover
// action. The notification log makes it idempotent across redeliveries,
// restarts and replicas. It is safe for concurrent use.
type Incidents struct {
	api      *slackgo.Client
	cfg      IncidentsConfig
	routes   *route.Tree
	log      *nflog.Log
	call     *caller
	logger   *slog.Logger
	channels map[string]string // receiver -> channel
	// channelIDs maps channel names (without '#') to the IDs Slack
	// answered with, for conversations.history.
	channelIDs sync.Map
}

var (
	_ notifier.Notifier = (*Incidents)(nil)
	_ ThreadPoster      = (*Incidents)(nil)
)

// NewIncidents returns the grouped Slack integration.
func NewIncidents(cfg IncidentsConfig, logger *slog.Logger) (*Incidents, error) {
	if cfg.Token == "" {
		return nil, errors.New("slack: a bot token is required")
	}
	if cfg.Log == nil {
		return nil, errors.New("slack: a notification log is required")
	}
	api, err := cfg.client()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Config = cfg.withDefaults()
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = time.Minute
	}
	if cfg.Replica == "" {
		cfg.Replica = "notifier"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Routes == nil {
		if cfg.Routes, err = route.New(nil, nil); err != nil {
			return nil, err
		}
	}
	logger = logger.With("integration", "slack")
	n := &Incidents{
		api:    api,
		cfg:    cfg,
		routes: cfg.Routes,
		log:    cfg.Log,
		logger: logger,
		call: &caller{
			limits:      newLimiters(cfg.ChannelRate, 1),
			maxAttempts: cfg.MaxAttempts,
			backoff:     cfg.RetryBackoff,
			wait:        sleep,
			logger:      logger,
			calls:       newCallMetrics(cfg.Registry),
		},
	}
	return n, nil
}

// Name returns "slack".
func (n *Incidents) Name() string { return "slack" }

// Check calls auth.test to verify the token and the API URL.
func (n *Incidents) Check(ctx context.Context) error {
	resp, err := n.api.AuthTestContext(ctx)
	if err != nil {
		return fmt.Errorf("slack: auth.test: %w", err)
	}
	n.logger.Info("slack token works", "team", resp.Team, "user", resp.User)
	return nil
}

// channel is where a receiver's messages go.
func (n *Incidents) channel(r route.Receiver) string {
	if r.SlackChannel != "" {
		return r.SlackChannel
	}
	return n.cfg.Channel
}

// Notify merges the alert into its group(s) and brings each group's Slack
// message up to date. It returns a *notifier.DeferError when a group must
// wait (group_wait, group_interval, another replica sending it).
func (n *Incidents) Notify(ctx context.Context, a *wire.Alert) error {
	ls := labels.Of(a)
	var errs []error
	for _, m := range n.routes.Match(ls) {
		if n.channel(m.Receiver) == "" {
			n.logger.Debug("receiver has no Slack channel", "receiver", m.Receiver.Name)
			continue
		}
		if err := n.notifyGroup(ctx, m, ls, a); err != nil {
			errs = append(errs, fmt.Errorf("receiver %s: %w", m.Receiver.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (n *Incidents) notifyGroup(ctx context.Context, m route.Match, ls map[string]string, a *wire.Alert) error {
	key := m.GroupKey(ls)
	now := n.cfg.Now()
	e, _, err := n.log.Modify(ctx, key, func(e *nflog.Entry) (*nflog.Entry, error) {
		if e == nil {
			if a.State != wire.StateFiring {
				return nil, nil // never notified: nothing to resolve
			}
			e = &nflog.Entry{Receiver: m.Receiver.Name, GroupLabels: m.GroupLabels(ls), Alerts: map[string]*wire.Alert{}, FirstSeen: now}
		}
		prev := e.Alerts[a.Fingerprint]
		switch {
		case prev != nil && prev.At.After(a.At):
			return nil, nil // an older state redelivered late
		case prev != nil && prev.State == a.State && prev.At.Equal(a.At):
			return nil, nil // already merged
		case prev == nil && a.State != wire.StateFiring:
			return nil, nil
		}
		if a.State == wire.StateFiring && e.TS != "" && e.Resolved() && e.SentHash == e.StateHash() {
			// The incident was over and said so: a new one starts with a
			// new message.
			*e = nflog.Entry{Receiver: e.Receiver, GroupLabels: e.GroupLabels, Alerts: map[string]*wire.Alert{}, FirstSeen: now}
		}
		e.Alerts[a.Fingerprint] = a
		e.RepeatInterval = m.RepeatInterval
		return e, nil
	})
	if err != nil {
		return err
	}
	if e == nil {
		return nil
	}
	if _, ok := e.Alerts[a.Fingerprint]; ok {
		if err := n.log.Index(ctx, a.Fingerprint, key); err != nil {
			return err
		}
	}
	return n.sync(ctx, key, m)
}

// loneCritical reports whether a group not yet posted holds one alert,
// firing with severity critical: it is posted at once, without waiting
// group_wait for company (group_wait trades a first page's speed for
// fewer messages; with nothing else pending there is nothing to gather).
// An alert that joins later goes into the same message as usual.
func loneCritical(e *nflog.Entry) bool {
	if len(e.Alerts) != 1 {
		return false
	}
	for _, a := range e.Alerts {
		return a.State == wire.StateFiring && a.Labels["severity"] == "critical"
	}
	return false
}

// sync brings the Slack message of a group up to date with its entry.
func (n *Incidents) sync(ctx context.Context, key string, m route.Match) error {
	for {
		e, rev, err := n.log.Get(ctx, key)
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		hash := e.StateHash()
		now := n.cfg.Now()
		if e.Claim != nil && e.Claim.By != n.cfg.Replica && now.Sub(e.Claim.At) < n.cfg.ClaimTTL {
			return notifier.Defer(n.cfg.ClaimTTL-now.Sub(e.Claim.At), "replica "+e.Claim.By+" is sending this group")
		}
		if hash == e.SentHash && e.Claim == nil {
			return nil // Slack shows this state already
		}
		if e.TS == "" {
			if wait := e.FirstSeen.Add(m.GroupWait).Sub(now); wait > 0 && !loneCritical(e) {
				return notifier.Defer(wait, "group_wait")
			}
		} else if wait := e.SentAt.Add(m.GroupInterval).Sub(now); wait > 0 && hash != e.SentHash {
			return notifier.Defer(wait, "group_interval")
		}
		// A claim left without a ts: an earlier attempt may have posted
		// and lost Slack's answer (a crash, a dropped connection).
		maybePosted := e.Claim != nil && e.TS == ""
		claimed := *e
		claimed.Claim = &nflog.Claim{Hash: hash, By: n.cfg.Replica, At: now}
		rev, err = n.log.Put(ctx, &claimed, rev)
		if errors.Is(err, nflog.ErrConflict) {
			continue // changed meanwhile: look again
		}
		if err != nil {
			return err
		}
		return n.send(ctx, key, &claimed, m, maybePosted)
	}
}

// send posts or updates the group's message and its thread replies for the
// claimed entry e, then records what was sent. When maybePosted is set (or
// a first post is retried) the message may exist already: it is looked up
// by its metadata before posting, so that it is never posted twice.
func (n *Incidents) send(ctx context.Context, key string, e *nflog.Entry, m route.Match, maybePosted bool) error {
	log := n.logger.With("group", key)
	text, blocks := RenderGroup(e)
	opts := []slackgo.MsgOption{slackgo.MsgOptionText(text, false), slackgo.MsgOptionBlocks(blocks...)}
	channel := e.ChannelID
	if channel == "" {
		channel = n.channel(m.Receiver)
	}
	first := e.TS == ""
	if first {
		var chID, ts string
		found := false
		post := slices.Concat(opts, []slackgo.MsgOption{slackgo.MsgOptionMetadata(groupMetadata(key, e.FirstSeen))})
		err := n.call.do(ctx, "chat.postMessage", channel, func(ctx context.Context) error {
			if maybePosted {
				fch, fts, err := n.findPosted(ctx, channel, key, e.FirstSeen)
				if err != nil {
					return err
				}
				if fts != "" {
					chID, ts, found = fch, fts, true
					return nil
				}
			}
			maybePosted = true // a retry may follow a post whose answer was lost
			var err error
			chID, ts, err = n.api.PostMessageContext(ctx, channel, post...)
			return err
		})
		if err != nil {
			return err
		}
		n.rememberChannel(channel, chID)
		if found {
			log.Info("slack group message found by its metadata; updating it instead of posting it again", "channel_id", chID, "ts", ts)
			if err := n.call.do(ctx, "chat.update", chID, func(ctx context.Context) error {
				_, _, _, err := n.api.UpdateMessageContext(ctx, chID, ts, opts...)
				return err
			}); err != nil {
				return err
			}
		}
		// Record where the message is at once, so that nothing posts it again.
		if _, _, err := n.log.Modify(ctx, key, func(cur *nflog.Entry) (*nflog.Entry, error) {
			if cur == nil {
				cur = e
			}
			cur.Channel, cur.ChannelID, cur.TS = channel, chID, ts
			return cur, nil
		}); err != nil {
			return fmt.Errorf("slack: posted %s but could not record it: %w", ts, err)
		}
		e.ChannelID, e.TS = chID, ts
		log.Info("slack group message posted", "channel_id", chID, "ts", ts)
	} else {
		err := n.call.do(ctx, "chat.update", e.ChannelID, func(ctx context.Context) error {
			_, _, _, err := n.api.UpdateMessageContext(ctx, e.ChannelID, e.TS, opts...)
			return err
		})
		if err != nil {
			return err
		}
		log.Info("slack group message updated", "channel_id", e.ChannelID, "ts", e.TS)
	}

	// Thread replies: each state change since the last send, in the order
	// the changes happened.
	var changed []*wire.Alert
	for _, a := range e.Sorted() {
		if prev, seen := e.SentStates[a.Fingerprint]; !seen || prev != a.State {
			changed = append(changed, a)
		}
	}
	slices.SortStableFunc(changed, func(a, b *wire.Alert) int { return a.At.Compare(b.At) })
	for _, a := range changed {
		if !first || a.State != wire.StateFiring {
			if err := n.reply(ctx, e.ChannelID, e.TS, RenderChange(a)); err != nil {
				return err
			}
		}
		if a.State == wire.StateFiring && n.cfg.Charter != nil {
			n.uploadChart(ctx, e, a, log)
		}
	}

	_, _, err := n.log.Modify(ctx, key, func(cur *nflog.Entry) (*nflog.Entry, error) {
		if cur == nil {
			return nil, nil
		}
		cur.SentHash = e.Claim.Hash
		cur.SentStates = e.States()
		cur.SentAt = n.cfg.Now()
		if cur.Claim != nil && cur.Claim.By == n.cfg.Replica {
			cur.Claim = nil
		}
		return cur, nil
	})
	return err
}

// uploadChart draws and uploads the chart of a; a failure is logged, not
// retried (the alert itself has been delivered).
func (n *Incidents) uploadChart(ctx context.Context, e *nflog.Entry, a *wire.Alert, log *slog.Logger) {
	png, err := n.cfg.Charter.Chart(ctx, a)
	if err != nil || len(png) == 0 {
		if err != nil {
			log.Warn("cannot draw the alert's chart", "fingerprint", a.Fingerprint, "err", err)
		}
		return
	}
	title := fmt.Sprintf("%s on %s", a.Rule, a.Labels[notifier.LabelHost])
	if err := n.upload(ctx, e.ChannelID, e.TS, "mciv-"+a.Rule+".png", png, title); err != nil {
		log.Warn("chart upload failed", "fingerprint", a.Fingerprint, "err", err)
	}
}

func (n *Incidents) reply(ctx context.Context, channelID, ts, text string) error {
	return n.call.do(ctx, "chat.postMessage (thread)", channelID, func(ctx context.Context) error {
		_, _, err := n.api.PostMessageContext(ctx, channelID, slackgo.MsgOptionText(text, false), slackgo.MsgOptionTS(ts))
		return err
	})
}

// replyBlocks posts a thread reply with Block Kit blocks and text as the fallback.
func (n *Incidents) replyBlocks(ctx context.Context, channelID, ts, text string, blocks []slackgo.Block) error {
	return n.call.do(ctx, "chat.postMessage (thread)", channelID, func(ctx context.Context) error {
		_, _, err := n.api.PostMessageContext(ctx, channelID, slackgo.MsgOptionText(text, false),
			slackgo.MsgOptionBlocks(blocks...), slackgo.MsgOptionTS(ts))
		return err
	})
}

func (n *Incidents) upload(ctx context.Context, channelID, ts, filename string, data []byte, title string) error {
	return n.call.do(ctx, "file upload", channelID, func(ctx context.Context) error {
		_, err := n.api.UploadFileContext(ctx, slackgo.UploadFileParameters{
			Filename: filename, FileSize: len(data), Reader: bytes.NewReader(data),
			Title: title, Channel: channelID, ThreadTimestamp: ts,
		})
		return err
	})
}

// Repeat brings up again, as a thread reply, every group that still fires,
// is not acknowledged, and was last notified RepeatInterval or longer ago.
// Replicas may all run it: the compare-and-set on the entry lets one of
// them post each reminder.
func (n *Incidents) Repeat(ctx context.Context) error {
	entries, err := n.log.Entries(ctx)
	if err != nil {
		return err
	}
	now := n.cfg.Now()
	var errs []error
	for _, e := range entries {
		if e.TS == "" || e.RepeatInterval <= 0 || e.Resolved() || e.AckedBy != "" || e.ResolvedBy != "" || e.Claim != nil {
			continue
		}
		if now.Sub(e.SentAt) < e.RepeatInterval || e.StateHash() != e.SentHash {
			continue
		}
		cur, rev, err := n.log.Get(ctx, e.GroupKey)
		if err != nil || cur == nil || !cur.SentAt.Equal(e.SentAt) {
			continue
		}
		cur.SentAt = now
		if _, err := n.log.Put(ctx, cur, rev); err != nil {
			continue // another replica reminded, or the group changed
		}
		firing := 0
		for _, a := range cur.Alerts {
			if a.State == wire.StateFiring {
				firing++
			}
		}
		primary := cur.Sorted()[0]
		text := fmt.Sprintf(":repeat: Still firing (%d alert(s)), not acknowledged: %s", firing, RenderChange(primary))
		if err := n.reply(ctx, cur.ChannelID, cur.TS, text); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
