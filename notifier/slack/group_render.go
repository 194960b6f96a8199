package slack

import (
	"fmt"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/nflog"
	slackgo "github.com/slack-go/slack"
)

// Action ids of the buttons on a group's message. The button's value is the
// group key.
const (
	ActionAcknowledge = "mciv_ack"
	ActionResolve     = "mciv_resolve"
	ActionSilence     = "mciv_silence_" // + duration: 1h, 4h, 24h
	// ActionApprove approves a failover waiting for a human; its value is
	// "<fingerprint> <cluster>" of the alert the actuator waits on.
	ActionApprove = "mciv_approve_failover"
)

// SilenceDurations are the durations offered by the Silence buttons.
var SilenceDurations = []time.Duration{time.Hour, 4 * time.Hour, 24 * time.Hour}

// silenceLabel writes 1h, 4h, 24h.
func silenceLabel(d time.Duration) string { return fmt.Sprintf("%dh", int(d.Hours())) }

// maxListed bounds the other alerts listed in a group message.
const maxListed = 10

// RenderGroup returns the message of an alert group: the first (most
// important) alert rendered as by Render, the other alerts of the group
// listed, who acknowledged it, and — while it fires — the Acknowledge,
// Silence and Resolve buttons.
func RenderGroup(e *nflog.Entry) (text string, blocks []slackgo.Block) {
	alerts := e.Sorted()
	if len(alerts) == 0 {
		return "empty alert group", []slackgo.Block{slackgo.NewSectionBlock(
			slackgo.NewTextBlockObject(slackgo.MarkdownType, "empty alert group", false, false), nil, nil)}
	}
	primary := alerts[0]
	text, blocks = Render(primary)
	firing := 0
	for _, a := range alerts {
		if a.State == wire.StateFiring {
			firing++
		}
	}
	if len(alerts) > 1 {
		text += escape(fmt.Sprintf(" (+%d more in this group, %d firing)", len(alerts)-1, firing))
		var lines []string
		for i, a := range alerts[1:] {
			if i == maxListed {
				lines = append(lines, fmt.Sprintf("… and %d more", len(alerts)-1-maxListed))
				break
			}
			line := fmt.Sprintf("• %s %s", notifier.StateText(a.State), escape(a.Rule))
			if h := a.Labels[notifier.LabelHost]; h != "" {
				line += " on " + escape(h)
			}
			line += ": " + notifier.FormatValue(a.Value)
			lines = append(lines, line)
		}
		blocks = append(blocks, slackgo.NewSectionBlock(slackgo.NewTextBlockObject(slackgo.MarkdownType,
			truncate("*Also in this group*\n"+strings.Join(lines, "\n"), maxSectionText), false, false), nil, nil))
	}
	var status []string
	if e.AckedBy != "" {
		status = append(status, "Acknowledged by "+mention(e.AckedBy))
	}
	if e.ResolvedBy != "" {
		status = append(status, "Marked resolved by "+mention(e.ResolvedBy))
	}
	if len(status) > 0 {
		blocks = append(blocks, slackgo.NewContextBlock("status",
			slackgo.NewTextBlockObject(slackgo.MarkdownType, strings.Join(status, " • "), false, false)))
	}
	if firing > 0 && e.ResolvedBy == "" {
		var buttons []slackgo.BlockElement
		if e.AckedBy == "" {
			buttons = append(buttons, button(ActionAcknowledge, "Acknowledge", e.GroupKey, slackgo.StylePrimary))
		}
		for _, d := range SilenceDurations {
			buttons = append(buttons, button(ActionSilence+silenceLabel(d), "Silence "+silenceLabel(d), e.GroupKey, ""))
		}
		buttons = append(buttons, button(ActionResolve, "Resolve", e.GroupKey, slackgo.StyleDanger))
		blocks = append(blocks, slackgo.NewActionBlock("mciv_actions", buttons...))
	}
	return text, blocks
}

func button(id, label, value string, style slackgo.Style) *slackgo.ButtonBlockElement {
	b := slackgo.NewButtonBlockElement(id, value, slackgo.NewTextBlockObject(slackgo.PlainTextType, label, false, false))
	if style != "" {
		b = b.WithStyle(style)
	}
	return b
}

// mention writes a Slack user id as a mention and anything else as text.
func mention(who string) string {
	if strings.HasPrefix(who, "U") || strings.HasPrefix(who, "W") {
		if !strings.ContainsAny(who, " <>&|") {
			return "<@" + who + ">"
		}
	}
	return escape(who)
}

// RenderChange is the thread reply for an alert's state change.
func RenderChange(a *wire.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s* %s", emoji(a.State, a.Labels[notifier.LabelSeverity]), notifier.StateText(a.State), escape(a.Rule))
	if h := a.Labels[notifier.LabelHost]; h != "" {
		fmt.Fprintf(&b, " on %s", escape(h))
	}
	fmt.Fprintf(&b, ": value %s", notifier.FormatValue(a.Value))
	if a.Baseline != 0 {
		fmt.Fprintf(&b, " (baseline %s)", notifier.FormatValue(a.Baseline))
	}
	at := a.At
	if a.State == wire.StateResolved && !a.EndsAt.IsZero() {
		at = a.EndsAt
	}
	if !at.IsZero() {
		fmt.Fprintf(&b, " at %s", slackDate(at))
	}
	return b.String()
}
