// Package notifier is Marvel, mciv's notifier: it consumes the alert state
// changes the analyzer publishes to the JetStream stream MCIV_ALERTS and
// delivers each of them to every configured integration (console, Slack,
// later voice and phone).
//
// The shape follows Alertmanager's notify package: every integration lives in
// its own subpackage (notifier/console, notifier/slack, ...) and implements
// the one small [Notifier] interface; the [Dispatcher] owns everything that is
// common to them: one durable JetStream consumer per integration (so that one
// integration's outage delays only itself), acknowledgement once the
// integration delivered, redelivery with backoff, per-alert order, and
// metrics.
package notifier

import (
	"context"
	"strconv"
	"strings"

	"github.com/mciv/mciv/internal/wire"
)

// Notifier delivers alert state changes to one destination.
//
// Notify must be safe for concurrent use and must honour ctx: it returns
// when ctx ends. It returns nil once the destination has the notification;
// any error makes the dispatcher try again later, so an integration must not
// return an error after it has delivered (that would deliver twice).
//
// An error that has a method RetryAfter() time.Duration (found with
// errors.As) asks the dispatcher to wait at least that long before the next
// attempt, e.g. because the destination rate-limited us.
type Notifier interface {
	// Name identifies the integration in logs and metrics ("console", "slack").
	Name() string
	// Notify delivers one alert state change.
	Notify(ctx context.Context, a *wire.Alert) error
}

// Well-known alert labels that integrations show prominently.
const (
	LabelCluster  = "cluster"
	LabelHost     = "host"
	LabelSeverity = "severity"
)

// Well-known alert annotations.
const (
	AnnotationSummary     = "summary"
	AnnotationDescription = "description"
	AnnotationRunbookURL  = "runbook_url"
	AnnotationDashboard   = "dashboard_url"
)

// StateText is the upper-case word integrations print for an alert's state:
// "FIRING", "RESOLVED", or the state itself in upper case for anything else.
func StateText(s wire.AlertState) string {
	switch s {
	case wire.StateFiring:
		return "FIRING"
	case wire.StateResolved:
		return "RESOLVED"
	}
	return strings.ToUpper(string(s))
}

// FormatValue renders a measured value or threshold for people: at most six
// significant digits, no trailing zeros (12.3, 0.25, 1.5e+06).
func FormatValue(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// OneLine collapses all runs of white space (including newlines) in s into
// single spaces, so that a templated annotation cannot break a one-line
// format.
func OneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
