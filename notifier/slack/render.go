package slack

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	slackgo "github.com/slack-go/slack"
)

// Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks):
// longer texts make Slack reject the whole message.
const (
	maxHeaderText  = 150
	maxSectionText = 3000
	maxFieldText   = 2000
	maxContextText = 2000
	maxFields      = 10
)

// Render returns the message for a: the text fallback, which names the
// state, rule, host, cluster, value and threshold and the summary, and the
// Block Kit blocks: a header, the summary and description, a grid of fields
// and a context line with the other labels and the times.
func Render(a *wire.Alert) (text string, blocks []slackgo.Block) {
	state := notifier.StateText(a.State)
	host := a.Labels[notifier.LabelHost]
	cluster := a.Labels[notifier.LabelCluster]
	severity := a.Labels[notifier.LabelSeverity]
	summary := a.Annotations[notifier.AnnotationSummary]
	description := a.Annotations[notifier.AnnotationDescription]
	value, threshold := notifier.FormatValue(a.Value), notifier.FormatValue(a.Threshold)

	// Text fallback: one line, mrkdwn-escaped.
	var t strings.Builder
	fmt.Fprintf(&t, "[%s] %s", state, a.Rule)
	if host != "" {
		fmt.Fprintf(&t, " on %s", host)
	}
	if cluster != "" {
		fmt.Fprintf(&t, " (cluster %s)", cluster)
	}
	fmt.Fprintf(&t, ": value %s, threshold %s", value, threshold)
	if s := notifier.OneLine(summary); s != "" {
		fmt.Fprintf(&t, " — %s", s)
	}
	text = escape(t.String())

	// Header.
	header := fmt.Sprintf("%s %s: %s", emoji(a.State, severity), state, notifier.OneLine(a.Rule))
	if host != "" {
		header += " on " + host
	}
	blocks = append(blocks, slackgo.NewHeaderBlock(
		slackgo.NewTextBlockObject(slackgo.PlainTextType, truncate(header, maxHeaderText), true, false)))

	// Summary and description.
	var body []string
	if summary != "" {
		body = append(body, "*"+escape(notifier.OneLine(summary))+"*")
	}
	if description != "" {
		body = append(body, escape(description))
	}
	var links []string
	if u := a.Annotations[notifier.AnnotationRunbookURL]; u != "" {
		links = append(links, fmt.Sprintf("<%s|Runbook>", escapeURL(u)))
	}
	if u := a.Annotations[notifier.AnnotationDashboard]; u != "" {
		links = append(links, fmt.Sprintf("<%s|Dashboard>", escapeURL(u)))
	}
	if len(links) > 0 {
		body = append(body, strings.Join(links, " • "))
	}
	if len(body) > 0 {
		blocks = append(blocks, slackgo.NewSectionBlock(
			slackgo.NewTextBlockObject(slackgo.MarkdownType, truncate(strings.Join(body, "\n"), maxSectionText), false, false), nil, nil))
	}

	// Fields.
	var fields []*slackgo.TextBlockObject
	field := func(name, v string) {
		if v == "" || len(fields) == maxFields {
			return
		}
		fields = append(fields, slackgo.NewTextBlockObject(slackgo.MarkdownType,
			truncate(fmt.Sprintf("*%s*\n%s", name, v), maxFieldText), false, false))
	}
	rule := escape(a.Rule)
	if a.Group != "" {
		rule += " (group " + escape(a.Group) + ")"
	}
	field("Rule", rule)
	field("State", state)
	field("Severity", escape(severity))
	field("Host", escape(host))
	field("Cluster", escape(cluster))
	if a.Baseline != 0 {
		field("Value", fmt.Sprintf("%s vs baseline %s (threshold %s)", value, notifier.FormatValue(a.Baseline), threshold))
	} else {
		field("Value", fmt.Sprintf("%s (threshold %s)", value, threshold))
	}
	if a.Signal != "" {
		sig := escape(a.Signal)
		if a.Stat != "" {
			sig = escape(a.Stat) + " of " + sig
		}
		field("Signal", sig)
	}
	if a.Score != 0 {
		field("Anomaly score", notifier.FormatValue(a.Score))
	}
	blocks = append(blocks, slackgo.NewSectionBlock(nil, fields, nil))

	// Context: the other labels and the times.
	var ctx []string
	var other []string
	for k, v := range a.Labels {
		switch k {
		case notifier.LabelHost, notifier.LabelCluster, notifier.LabelSeverity:
		default:
			other = append(other, escape(k)+"="+escape(v))
		}
	}
	slices.Sort(other)
	if len(other) > 0 {
		ctx = append(ctx, strings.Join(other, " "))
	}
	if !a.StartsAt.IsZero() {
		ctx = append(ctx, "started "+slackDate(a.StartsAt))
	}
	if a.State == wire.StateResolved && !a.EndsAt.IsZero() {
		ctx = append(ctx, "resolved "+slackDate(a.EndsAt))
	}
	if a.Fingerprint != "" {
		ctx = append(ctx, "fingerprint "+escape(a.Fingerprint))
	}
	if len(ctx) > 0 {
		blocks = append(blocks, slackgo.NewContextBlock("",
			slackgo.NewTextBlockObject(slackgo.MarkdownType, truncate(strings.Join(ctx, " • "), maxContextText), false, false)))
	}
	return text, blocks
}

// emoji marks the header by state and severity.
func emoji(state wire.AlertState, severity string) string {
	if state == wire.StateResolved {
		return ":large_green_circle:"
	}
	switch strings.ToLower(severity) {
	case "critical", "page", "error":
		return ":red_circle:"
	case "warning", "warn":
		return ":large_orange_circle:"
	}
	return ":large_blue_circle:"
}

// slackDate formats t with Slack's date syntax, so that every reader sees
// it in their own time zone; the fallback is UTC.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04:05 UTC"))
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escape makes s literal in mrkdwn: Slack requires &, < and > escaped.
func escape(s string) string { return mrkdwnEscaper.Replace(s) }

// escapeURL makes u safe inside <url|label>.
func escapeURL(u string) string {
	return strings.NewReplacer("|", "%7C", ">", "%3E", "<", "%3C", " ", "%20").Replace(u)
}

// truncate shortens s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
