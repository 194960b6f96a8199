// Package console is the notifier integration that writes one human-readable
// line per alert state change to a terminal, a log file or any io.Writer:
//
//	FIRING   TCPRetransmitRateHigh severity=warning cluster=default host=db-1 value=12.3 threshold=5 — TCP retransmits on db-1 at 12.3/s
package console

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
)

// Notifier writes alerts to an io.Writer, one line each. It is safe for
// concurrent use: lines are never interleaved.
type Notifier struct {
	mu sync.Mutex
	w  io.Writer
}

var _ notifier.Notifier = (*Notifier)(nil)

// New returns a Notifier writing to w.
func New(w io.Writer) *Notifier {
	return &Notifier{w: w}
}

// Name returns "console".
func (n *Notifier) Name() string { return "console" }

// Notify writes the line for a.
func (n *Notifier) Notify(ctx context.Context, a *wire.Alert) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	line := Format(a) + "\n"
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := io.WriteString(n.w, line); err != nil {
		return fmt.Errorf("console: write alert %s: %w", a.Rule, err)
	}
	return nil
}

// Format returns the line (without newline) for a: the state, the rule, the
// severity, cluster and host labels, the other labels sorted by name, the
// value against the threshold, and the summary annotation (or else the
// description) after a dash.
func Format(a *wire.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %s", notifier.StateText(a.State), notifier.OneLine(a.Rule))
	first := []string{notifier.LabelSeverity, notifier.LabelCluster, notifier.LabelHost}
	for _, k := range first {
		if v, ok := a.Labels[k]; ok {
			writeLabel(&b, k, v)
		}
	}
	rest := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		if !slices.Contains(first, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		writeLabel(&b, k, a.Labels[k])
	}
	fmt.Fprintf(&b, " value=%s threshold=%s", notifier.FormatValue(a.Value), notifier.FormatValue(a.Threshold))
	text := a.Annotations[notifier.AnnotationSummary]
	if text == "" {
		text = a.Annotations[notifier.AnnotationDescription]
	}
	if text = notifier.OneLine(text); text != "" {
		b.WriteString(" — ")
		b.WriteString(text)
	}
	return b.String()
}

// writeLabel writes " name=value", quoting the value if it is empty or has
// spaces or quotes, so that the line stays parseable.
func writeLabel(b *strings.Builder, name, value string) {
	b.WriteByte(' ')
	b.WriteString(notifier.OneLine(name))
	b.WriteByte('=')
	if value == "" || strings.ContainsAny(value, " \t\r\n\"=") {
		fmt.Fprintf(b, "%q", value)
		return
	}
	b.WriteString(value)
}
