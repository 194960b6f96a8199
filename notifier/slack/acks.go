package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	slackgo "github.com/slack-go/slack"
)

// Durable consumer names of the thread feed; replicas share them.
const (
	AcksDurable    = "mciv-notifier-slack-acks"
	ActionsDurable = "mciv-notifier-slack-actions"
)

// maxSeen bounds Entry.Seen.
const maxSeen = 64

// RunThreads follows the acknowledgements (MCIV_ACKS, from Slack buttons
// and phone keys) and the failover audit records (MCIV_ACTIONS) and puts
// each into the Slack thread of its alert's group, updating the group's
// message for acknowledgements and resolutions; once a minute it posts
// repeat_interval reminders (see Repeat). It returns when ctx ends.
func (n *Incidents) RunThreads(ctx context.Context, js jetstream.JetStream) error {
	errc := make(chan error, 3)
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				errc <- nil
				return
			case <-t.C:
				if err := n.Repeat(ctx); err != nil && ctx.Err() == nil {
					n.logger.Warn("repeat_interval reminders failed", "err", err)
				}
			}
		}
	}()
	go func() {
		errc <- consumeLoop(ctx, js, bus.AcksStream, AcksDurable, wire.AcksWildcard, n.logger, func(ctx context.Context, m jetstream.Msg) error {
			ack, err := wire.DecodeAck(m.Data())
			if err != nil {
				return errPermanent{err}
			}
			if _, err := n.cfg.AckChecker.Check(m.Subject(), m.Data(), m.Headers(), ack); err != nil {
				return errPermanent{err} // counted and audited by the escalation and the analyzer
			}
			err = n.handleAck(ctx, ack)
			if waitedTooLong(m, err) {
				n.logger.Info("acknowledgement not shown in Slack: its alert's group was never posted",
					"fingerprint", ack.Fingerprint, "action", ack.Action, "by", ack.By, "waited", threadWait)
				return nil
			}
			return err
		})
	}()
	go func() {
		errc <- consumeLoop(ctx, js, bus.ActionsStream, ActionsDurable, wire.ActionsWildcard, n.logger, func(ctx context.Context, m jetstream.Msg) error {
			act, err := wire.DecodeAction(m.Data())
			if err != nil {
				return errPermanent{err}
			}
			err = n.handleAction(ctx, act)
			if waitedTooLong(m, err) {
				n.logger.Info("failover record dropped: its alert has no Slack thread (not routed to Slack, silenced, or never posted)",
					"cluster", act.Cluster, "fingerprint", act.Fingerprint, "decision", act.Decision, "waited", threadWait)
				return nil
			}
			return err
		})
	}()
	return errors.Join(<-errc, <-errc, <-errc)
}

// errPermanent marks a message that can never be handled.
type errPermanent struct{ error }

// errNoThreadYet says that a failover record or an acknowledgement arrived
// before its alert's Slack message was posted (during group_wait, or while
// the post was in flight): it is delivered again shortly, for up to
// threadWait.
var errNoThreadYet = errors.New("the alert's Slack message is not posted yet")

// threadWait bounds how long a failover record waits for its alert's
// Slack message: longer than any sensible group_wait.
const threadWait = 10 * time.Minute

// waitedTooLong reports whether err says that m found no thread yet and m
// has waited threadWait for one already.
func waitedTooLong(m jetstream.Msg, err error) bool {
	if !errors.Is(err, errNoThreadYet) {
		return false
	}
	md, merr := m.Metadata()
	return merr == nil && time.Since(md.Timestamp) > threadWait
}

// notYetDelayFor is how soon a record that found no thread is looked at
// again: within a second at first (a post in flight), backing off to 30 s
// for one whose alert may never be posted.
func notYetDelayFor(m jetstream.Msg) time.Duration {
	md, err := m.Metadata()
	if err != nil {
		return time.Second
	}
	return min(max(time.Since(md.Timestamp)/4, time.Second), 30*time.Second)
}

// consumeLoop feeds every message of a durable consumer to handle, one at a
// time, acknowledging after success and retrying failures with backoff.
func consumeLoop(ctx context.Context, js jetstream.JetStream, stream, durable, filter string, logger *slog.Logger, handle func(context.Context, jetstream.Msg) error) error {
	log := logger.With("stream", stream, "durable", durable)
	wait := time.Second
	for ctx.Err() == nil {
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: durable, DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy,
			AckWait: time.Minute, FilterSubject: filter, Description: "mciv notifier: Slack thread feed",
		})
		if err != nil {
			if errors.Is(err, jetstream.ErrConnectionClosed) {
				return err
			}
			log.Warn("thread feed consumer failed; retrying", "err", err, "retry_in", wait)
			if sleep(ctx, wait) != nil {
				return nil
			}
			wait = min(2*wait, time.Minute)
			continue
		}
		wait = time.Second
		for ctx.Err() == nil {
			// A bounded wait: a pull request lost with a NATS node is
			// replaced within pullWait.
			fctx, cancel := context.WithTimeout(ctx, pullWait)
			msg, err := cons.Next(jetstream.FetchContext(fctx))
			cancel()
			if ctx.Err() != nil {
				if msg != nil {
					_ = msg.Nak()
				}
				return nil
			}
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			if err != nil {
				log.Warn("thread feed: next message failed", "err", err)
				break
			}
			herr := handle(ctx, msg)
			var perm errPermanent
			switch {
			case herr == nil:
				actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if err := msg.DoubleAck(actx); err != nil {
					log.Warn("thread feed: ack failed", "err", err)
				}
				cancel()
			case errors.As(herr, &perm):
				log.Warn("thread feed: dropping a message it cannot act on (undecodable, or an ack nobody trusted made)", "subject", msg.Subject(), "err", herr)
				_ = msg.Term()
			case errors.Is(herr, errNoThreadYet):
				log.Debug("thread feed: the alert's message is not posted yet; looking again", "subject", msg.Subject())
				_ = msg.NakWithDelay(notYetDelayFor(msg))
			default:
				log.Warn("thread feed: handling failed; retrying", "subject", msg.Subject(), "err", herr)
				_ = msg.NakWithDelay(5 * time.Second)
			}
		}
	}
	return nil
}

// handleAck records an acknowledgement in the groups of its alert, updates
// their messages and replies in their threads. It returns errNoThreadYet
// when a group's message is not posted yet (an ack made by phone during
// group_wait, a press racing the post's answer): the ack is looked at again
// once it is, and groups done already are not done twice.
func (n *Incidents) handleAck(ctx context.Context, ack *wire.Ack) error {
	keys, err := n.log.Groups(ctx, ack.Fingerprint)
	if err != nil {
		return err
	}
	unposted := false
	for _, key := range keys {
		var fresh, waiting bool
		e, _, err := n.log.Modify(ctx, key, func(e *nflog.Entry) (*nflog.Entry, error) {
			fresh, waiting = false, false
			if e == nil || slices.Contains(e.Seen, ack.ID) {
				return nil, nil
			}
			if e.TS == "" {
				waiting = true
				return nil, nil
			}
			fresh = true
			switch ack.Action {
			case wire.AckAcknowledge:
				if e.AckedBy == "" {
					e.AckedBy, e.AckedAt = ack.By, ack.At
				}
			case wire.AckResolve:
				if e.ResolvedBy == "" {
					e.ResolvedBy = ack.By
				}
			}
			e.Seen = append(e.Seen, ack.ID)
			if len(e.Seen) > maxSeen {
				e.Seen = e.Seen[len(e.Seen)-maxSeen:]
			}
			return e, nil
		})
		if err != nil {
			return err
		}
		unposted = unposted || waiting
		if !fresh {
			continue
		}
		if ack.Action == wire.AckAcknowledge || ack.Action == wire.AckResolve {
			text, blocks := RenderGroup(e)
			if err := n.call.do(ctx, "chat.update", e.ChannelID, func(ctx context.Context) error {
				_, _, _, err := n.api.UpdateMessageContext(ctx, e.ChannelID, e.TS, slackgo.MsgOptionText(text, false), slackgo.MsgOptionBlocks(blocks...))
				return err
			}); err != nil {
				return err
			}
		}
		if err := n.reply(ctx, e.ChannelID, e.TS, AckText(ack)); err != nil {
			return err
		}
	}
	if unposted {
		return errNoThreadYet
	}
	return nil
}

// AckText is the thread reply for an acknowledgement.
func AckText(ack *wire.Ack) string {
	who := mention(ack.By)
	via := ""
	if ack.Via != "" && ack.Via != "slack" {
		via = " via " + escape(ack.Via)
	}
	switch ack.Action {
	case wire.AckAcknowledge:
		return fmt.Sprintf(":eyes: Acknowledged by %s%s", who, via)
	case wire.AckResolve:
		return fmt.Sprintf(":white_check_mark: Marked resolved by %s%s", who, via)
	case wire.AckSilence:
		until := ""
		if !ack.Until.IsZero() {
			until = " until " + slackDate(ack.Until)
		}
		return fmt.Sprintf(":no_bell: Silenced by %s%s%s", who, via, until)
	case wire.AckApprove:
		return fmt.Sprintf(":ok: Failover approved by %s%s", who, via)
	}
	return fmt.Sprintf("%s by %s%s", escape(string(ack.Action)), who, via)
}

// handleAction puts a failover audit record into the thread of its alert.
// It returns errNoThreadYet when the alert has no group yet or a group's
// message is not posted yet: the record is never lost to that race (a
// pending approval's button above all).
func (n *Incidents) handleAction(ctx context.Context, act *wire.Action) error {
	if act.Fingerprint == "" {
		return nil
	}
	keys, err := n.log.Groups(ctx, act.Fingerprint)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return errNoThreadYet
	}
	unposted := false
	for _, key := range keys {
		e, _, err := n.log.Get(ctx, key)
		if err != nil {
			return err
		}
		if e != nil && e.TS == "" {
			unposted = true
			continue
		}
		if e == nil || slices.Contains(e.Seen, "action-"+act.ID) {
			continue
		}
		text := ActionText(act)
		if act.Decision == "pending_approval" {
			err = n.replyBlocks(ctx, e.ChannelID, e.TS, text, approvalBlocks(text, act))
		} else {
			err = n.reply(ctx, e.ChannelID, e.TS, text)
		}
		if err != nil {
			return err
		}
		if _, _, err := n.log.Modify(ctx, key, func(e *nflog.Entry) (*nflog.Entry, error) {
			if e == nil {
				return nil, nil
			}
			e.Seen = append(e.Seen, "action-"+act.ID)
			if len(e.Seen) > maxSeen {
				e.Seen = e.Seen[len(e.Seen)-maxSeen:]
			}
			return e, nil
		}); err != nil {
			return err
		}
	}
	if unposted {
		return errNoThreadYet
	}
	return nil
}

// ActionText is the thread reply for an audited action: a failover
// decision, or the analyzer's record of a resolve.
func ActionText(a *wire.Action) string {
	if a.Kind == wire.ActionKindResolve {
		text := ":white_check_mark: Ended in the analyzer"
		if q := a.Evidence["quiet_until"]; q != "" {
			if t, err := time.Parse(time.RFC3339, q); err == nil {
				text += "; it does not fire again before " + slackDate(t)
			}
		}
		return text
	}
	var b strings.Builder
	icon := ":gear:"
	switch a.Decision {
	case "refused":
		icon = ":no_entry:"
	case "pending_approval":
		icon = ":raised_hand:"
	case "acted":
		icon = ":arrows_counterclockwise:"
	}
	fmt.Fprintf(&b, "%s %s %s", icon, escape(strings.ToUpper(a.Kind[:min(1, len(a.Kind))])+a.Kind[min(1, len(a.Kind)):]), escape(strings.ReplaceAll(a.Decision, "_", " ")))
	if a.From != "" || a.To != "" {
		fmt.Fprintf(&b, ": %s → %s", escape(a.From), escape(a.To))
	}
	if a.Outcome != "" {
		fmt.Fprintf(&b, " (%s)", escape(a.Outcome))
	}
	if a.Reason != "" {
		fmt.Fprintf(&b, " — %s", escape(a.Reason))
	}
	if a.Safeguard != "" {
		fmt.Fprintf(&b, " [safeguard: %s]", escape(a.Safeguard))
	}
	return b.String()
}

// approvalBlocks is a pending failover's thread reply: the decision and a
// button that approves it (the actuator acts on the signed press's Ack).
func approvalBlocks(text string, act *wire.Action) []slackgo.Block {
	btn := slackgo.NewButtonBlockElement(ActionApprove, strings.TrimSpace(act.Fingerprint+" "+act.Cluster+" "+act.Nonce),
		slackgo.NewTextBlockObject(slackgo.PlainTextType, "Approve failover", false, false))
	btn.Style = slackgo.StyleDanger
	btn.Confirm = slackgo.NewConfirmationBlockObject(
		slackgo.NewTextBlockObject(slackgo.PlainTextType, "Approve failover?", false, false),
		slackgo.NewTextBlockObject(slackgo.PlainTextType, truncate(act.Reason, 300), false, false),
		slackgo.NewTextBlockObject(slackgo.PlainTextType, "Approve", false, false),
		slackgo.NewTextBlockObject(slackgo.PlainTextType, "Cancel", false, false))
	return []slackgo.Block{
		slackgo.NewSectionBlock(slackgo.NewTextBlockObject(slackgo.MarkdownType, truncate(text, maxSectionText), false, false), nil, nil),
		slackgo.NewActionBlock("mciv_failover_"+act.ID, btn),
	}
}

// pullWait bounds one pull request of the thread feeds.
const pullWait = 5 * time.Second
