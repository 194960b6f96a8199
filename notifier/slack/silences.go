package slack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
)

// SilenceLister is what the silence feed reads (silence.Store).
type SilenceLister interface {
	List(ctx context.Context) ([]*silence.Silence, error)
}

// SilenceReplies replies in the thread of every open incident a silence
// mutes, once when the silence starts and once when it ends (expired with
// `mciv silence expire` or run out). Silences made with Slack's buttons
// are left out: their button press replies already. Each reply is
// recorded in the group's entry (Seen), so replicas and restarts post it
// once. It returns the first error; call it periodically (RunSilences).
func (n *Incidents) SilenceReplies(ctx context.Context, silences SilenceLister) error {
	all, err := silences.List(ctx)
	if err != nil {
		return err
	}
	entries, err := n.log.Entries(ctx)
	if err != nil {
		return err
	}
	now := n.cfg.Now()
	var errs []error
	for _, s := range all {
		if strings.HasPrefix(s.CreatedBy, "slack") || s.StartsAt.After(now) {
			continue
		}
		active := s.Active(now)
		for _, e := range entries {
			if e.TS == "" || !mutes(s.Matchers, e) {
				continue
			}
			on, off := "silence-"+s.ID, "unsilence-"+s.ID
			var mark, text string
			switch {
			case active && !slices.Contains(e.Seen, on) && !e.Resolved():
				mark, text = on, SilenceText(s, true)
			case !active && slices.Contains(e.Seen, on) && !slices.Contains(e.Seen, off):
				mark, text = off, SilenceText(s, false)
			default:
				continue
			}
			if err := n.markAndReply(ctx, e.GroupKey, mark, text); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// markAndReply records mark in the group's Seen list and, if it was not
// there yet, replies text in its thread.
func (n *Incidents) markAndReply(ctx context.Context, key, mark, text string) error {
	fresh := false
	e, _, err := n.log.Modify(ctx, key, func(e *nflog.Entry) (*nflog.Entry, error) {
		if e == nil || e.TS == "" || slices.Contains(e.Seen, mark) {
			fresh = false
			return nil, nil
		}
		fresh = true
		e.Seen = append(e.Seen, mark)
		if len(e.Seen) > maxSeen {
			e.Seen = e.Seen[len(e.Seen)-maxSeen:]
		}
		return e, nil
	})
	if err != nil || !fresh {
		return err
	}
	return n.reply(ctx, e.ChannelID, e.TS, text)
}

// mutes reports whether the matchers mute a firing alert of the group.
func mutes(ms labels.Matchers, e *nflog.Entry) bool {
	for _, a := range e.Alerts {
		if a.State == wire.StateFiring && ms.Matches(labels.Of(a)) {
			return true
		}
	}
	return false
}

// SilenceText is the thread reply (and console line) for a silence that
// started (on) or ended.
func SilenceText(s *silence.Silence, on bool) string {
	who := s.CreatedBy
	if who == "" {
		who = "someone"
	}
	if !on {
		return fmt.Sprintf(":bell: Silence %s (%s) by %s ended at %s", s.ID, escape(s.Matchers.String()), escape(who), slackDate(s.EndsAt))
	}
	text := fmt.Sprintf(":no_bell: Silenced by %s until %s: %s", escape(who), slackDate(s.EndsAt), escape(s.Matchers.String()))
	if s.Comment != "" {
		text += " — " + escape(s.Comment)
	}
	return text
}

// RunSilences calls SilenceReplies every interval (default 10s) until ctx
// ends; failures are logged.
func (n *Incidents) RunSilences(ctx context.Context, silences SilenceLister, every time.Duration) error {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := n.SilenceReplies(ctx, silences); err != nil && ctx.Err() == nil {
			n.logger.Warn("silence thread replies failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
