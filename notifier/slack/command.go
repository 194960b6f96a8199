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
	"github.com/mciv/mciv/notifier/silence"
	slackgo "github.com/slack-go/slack"
)

// CommandName is the slash command the Slack app registers.
const CommandName = "/mciv"

// FailoverSwitch is the global failover pause, as the slash command sees
// it (app/ wires the actuator's store; the notifier does not import it).
type FailoverSwitch interface {
	// Paused reports whether failover is paused, by whom and why.
	Paused(ctx context.Context) (paused bool, by, reason string, err error)
	// Pause pauses failover.
	Pause(ctx context.Context, by, reason string) error
}

// commandHelp is the answer to an unknown or empty command.
const commandHelp = "Usage: `/mciv status` | `/mciv ack ID` | `/mciv resolve ID` | " +
	"`/mciv silence MATCHER... DURATION [-- comment]` | `/mciv failover pause [reason]` " +
	"(ID: a group key from a message's buttons, or an alert fingerprint)"

// Command runs one /mciv slash command from user (a Slack user ID) and
// returns the answer to show in the channel. Acknowledging and resolving
// take the buttons' path (HandleCallback), so the same rules apply; the
// failover switch may be nil (then `failover` is refused).
func (h *Interactions) Command(ctx context.Context, cmd slackgo.SlashCommand, failover FailoverSwitch) string {
	if !h.allowed(cmd.UserID) {
		h.logger.Warn("ignoring a command from a user who is not allowed to", "user", cmd.UserID)
		return "You are not on the on-call roster: mciv does not take commands from you."
	}
	args := strings.Fields(cmd.Text)
	if len(args) == 0 {
		return commandHelp
	}
	var (
		out string
		err error
	)
	switch args[0] {
	case "status":
		out, err = h.status(ctx, failover)
	case "ack", "resolve":
		if len(args) != 2 {
			return commandHelp
		}
		action := ActionAcknowledge
		if args[0] == "resolve" {
			action = ActionResolve
		}
		out, err = h.commandPress(ctx, cmd, action, args[1])
	case "silence":
		out, err = h.commandSilence(ctx, cmd, args[1:])
	case "failover":
		if len(args) < 2 || args[1] != "pause" {
			return commandHelp
		}
		if failover == nil {
			return "Failover is not configured here."
		}
		reason := strings.Join(args[2:], " ")
		if reason == "" {
			reason = "paused from Slack"
		}
		if err = failover.Pause(ctx, "slack:"+cmd.UserID, reason); err == nil {
			out = fmt.Sprintf(":double_vertical_bar: Failover paused by <@%s>: %s", cmd.UserID, reason)
		}
	default:
		return commandHelp
	}
	if err != nil {
		h.logger.Error("slash command failed", "command", args[0], "user", cmd.UserID, "err", err)
		return "mciv could not do that: " + err.Error()
	}
	h.logger.Info("slash command", "command", args[0], "user", cmd.UserID)
	return out
}

// status describes the open incidents, the active silences and the
// failover switch.
func (h *Interactions) status(ctx context.Context, failover FailoverSwitch) (string, error) {
	entries, err := h.log.Entries(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	open := 0
	for _, e := range entries {
		if e.Resolved() || e.ResolvedBy != "" || len(e.Alerts) == 0 {
			continue
		}
		open++
		firing := 0
		for _, a := range e.Alerts {
			if a.State == wire.StateFiring {
				firing++
			}
		}
		primary := e.Sorted()[0]
		fmt.Fprintf(&b, "\n• `%s` %s on %s: %d firing", e.GroupKey, primary.Rule, primary.Labels["host"], firing)
		if e.AckedBy != "" {
			fmt.Fprintf(&b, ", acknowledged by <@%s>", e.AckedBy)
		}
	}
	head := fmt.Sprintf("*mciv status*: %d open incident(s)", open)
	if h.silences != nil {
		ss, err := h.silences.List(ctx)
		if err != nil {
			return "", err
		}
		active := 0
		for _, s := range ss {
			if s.Active(h.now()) {
				active++
			}
		}
		head += fmt.Sprintf(", %d active silence(s)", active)
	}
	if failover != nil {
		paused, by, reason, err := failover.Paused(ctx)
		switch {
		case err != nil:
			head += ", failover state unknown"
		case paused:
			head += fmt.Sprintf(", failover paused by %s (%s)", by, reason)
		default:
			head += ", failover armed"
		}
	}
	return head + b.String(), nil
}

// commandPress acknowledges or resolves the group id (a group key, or an
// alert fingerprint whose groups are all acted on) as its button would.
func (h *Interactions) commandPress(ctx context.Context, cmd slackgo.SlashCommand, action, id string) (string, error) {
	keys := []string{id}
	if e, _, err := h.log.Get(ctx, id); err != nil {
		return "", err
	} else if e == nil {
		if keys, err = h.log.Groups(ctx, id); err != nil {
			return "", err
		}
	}
	if len(keys) == 0 {
		return fmt.Sprintf("No incident `%s`.", id), nil
	}
	ts := fmt.Sprintf("%d.%06d", h.now().Unix(), h.now().Nanosecond()/1000)
	for _, k := range keys {
		cb := &slackgo.InteractionCallback{
			Type:      slackgo.InteractionTypeBlockActions,
			TriggerID: cmd.TriggerID,
			User:      slackgo.User{ID: cmd.UserID, Name: cmd.UserName},
			Team:      slackgo.Team{ID: cmd.TeamID},
		}
		cb.ActionCallback.BlockActions = []*slackgo.BlockAction{{ActionID: action, Value: k, ActionTs: ts}}
		if err := h.HandleCallback(ctx, cb); err != nil {
			return "", err
		}
	}
	verb := "acknowledged"
	if action == ActionResolve {
		verb = "resolved"
	}
	return fmt.Sprintf("<@%s> %s `%s`.", cmd.UserID, verb, strings.Join(keys, "`, `")), nil
}

// commandSilence silences the matchers for the duration (the last
// argument before an optional "-- comment").
func (h *Interactions) commandSilence(ctx context.Context, cmd slackgo.SlashCommand, args []string) (string, error) {
	if h.silences == nil {
		return "", errors.New("silences are not available")
	}
	comment := "silenced with /mciv in Slack"
	if i := slices.Index(args, "--"); i >= 0 {
		comment = strings.Join(args[i+1:], " ")
		args = args[:i]
	}
	if len(args) < 2 {
		return commandHelp, nil
	}
	d, err := time.ParseDuration(args[len(args)-1])
	if err != nil || d <= 0 || d > 7*24*time.Hour {
		return "The last argument must be a duration up to 168h, e.g. `2h`.", nil
	}
	ms, err := labels.ParseAll(args[:len(args)-1])
	if err != nil {
		return "", fmt.Errorf("matchers: %w", err)
	}
	now := h.now()
	s, err := h.silences.Add(ctx, silence.Silence{
		Matchers: ms, StartsAt: now, EndsAt: now.Add(d), CreatedBy: "slack:" + cmd.UserID, Comment: comment,
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(":mute: <@%s> silenced `%s` for %s (silence %s): %s", cmd.UserID, strings.Join(args[:len(args)-1], " "), d, s.ID, comment), nil
}
