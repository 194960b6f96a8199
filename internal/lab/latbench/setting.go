package latbench

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// PromSetting is one way to run Prometheus + Alertmanager for the
// retransmit fault: how often node_exporter is scraped and the rules are
// evaluated, the rule's rate window and `for`, and Alertmanager's
// group_wait and group_interval.
type PromSetting struct {
	// Name identifies the setting in paths and tables ("fastest").
	Name string
	// Scrape and Eval are the scrape and rule evaluation intervals.
	Scrape, Eval time.Duration
	// Window is the range of rate(node_netstat_Tcp_RetransSegs[Window]).
	Window time.Duration
	// Threshold is the retransmits per second above which the rule holds.
	Threshold float64
	// For is the rule's `for`: how long it must hold before firing.
	For time.Duration
	// GroupWait is Alertmanager's wait before a new group's first
	// notification.
	GroupWait time.Duration
	// GroupInterval is Alertmanager's wait between notifications of a
	// group that exists: until the resolve is sent, and for a new alert
	// that joins a group still there (see Fastest).
	GroupInterval time.Duration
}

// Fastest is Prometheus at its fastest: 1 s scrape and evaluation, a 5 s
// rate window, no `for`, a 1 s group_wait, and a 1 s group_interval too.
// The last matters: Prometheus re-sends a resolved alert to Alertmanager
// every minute for 15 minutes, which brings the last incident's group
// back, and a new alert that joins a group that exists waits for the
// group's next group_interval tick, not group_wait (with 5s, the first
// notification took 5.8 s in two of three faults instead of 3 s).
func Fastest() PromSetting {
	return PromSetting{Name: "fastest", Scrape: time.Second, Eval: time.Second, Window: 5 * time.Second,
		Threshold: 1, For: 0, GroupWait: time.Second, GroupInterval: time.Second}
}

// Typical is Prometheus as it is commonly run: 15 s scrape and
// evaluation, a 1 m rate window, `for: 1m`, a 30 s group_wait.
// (Alertmanager's default group_interval is 5m; 1m here shortens the wait
// for the resolve between faults, and the wait of a fault that finds the
// last incident's group still there: see Fastest.)
func Typical() PromSetting {
	return PromSetting{Name: "typical", Scrape: 15 * time.Second, Eval: 15 * time.Second, Window: time.Minute,
		Threshold: 1, For: time.Minute, GroupWait: 30 * time.Second, GroupInterval: time.Minute}
}

// Cycle is the longest period the setting polls on (scrape, evaluation,
// Alertmanager's group_interval ticks): a fault's latency depends on
// where in this cycle it starts.
func (s PromSetting) Cycle() time.Duration {
	return max(s.Scrape, s.Eval, s.GroupInterval)
}

var validSettingName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Validate reports what is wrong with s.
func (s PromSetting) Validate() error {
	var errs []error
	if !validSettingName.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("name %q: want lower-case letters, digits and '-'", s.Name))
	}
	if s.Scrape < time.Second || s.Eval < time.Second {
		errs = append(errs, fmt.Errorf("scrape %s, eval %s: want at least 1s", s.Scrape, s.Eval))
	}
	if s.Window < 2*s.Scrape {
		errs = append(errs, fmt.Errorf("window %s: want at least two scrapes (%s)", s.Window, 2*s.Scrape))
	}
	if s.For < 0 || s.GroupWait < 0 || s.GroupInterval <= 0 {
		errs = append(errs, fmt.Errorf("for %s, group_wait %s, group_interval %s: want for and group_wait >= 0, group_interval > 0", s.For, s.GroupWait, s.GroupInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("latbench: setting %q: %w", s.Name, err)
	}
	return nil
}

// Expr is the alerting rule's expression.
func (s PromSetting) Expr() string {
	return fmt.Sprintf("rate(node_netstat_Tcp_RetransSegs[%s]) > %g", promDuration(s.Window), s.Threshold)
}

// PrometheusConfig returns prometheus.yml: node_exporter at target
// (host:port), alerts to the Alertmanager at alertmanager (host:port), the
// rules in rulesFile.
func (s PromSetting) PrometheusConfig(target, alertmanager, rulesFile string) string {
	timeout := min(s.Scrape, 10*time.Second)
	return fmt.Sprintf(`# written by the mciv latency benchmark (setting %[1]s)
global:
  scrape_interval: %[2]s
  scrape_timeout: %[3]s
  evaluation_interval: %[4]s
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%[5]q]
rule_files: [%[6]q]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [%[7]q]
`, s.Name, promDuration(s.Scrape), promDuration(timeout), promDuration(s.Eval), alertmanager, rulesFile, target)
}

// RulesFile returns the Prometheus rule file with the one alerting rule.
func (s PromSetting) RulesFile() string {
	return fmt.Sprintf(`groups:
  - name: latbench
    rules:
      - alert: TCPRetransmits
        expr: %s
        for: %s
        labels:
          severity: warning
`, s.Expr(), promDuration(s.For))
}

// AlertmanagerConfig returns alertmanager.yml that sends every group to
// webhookURL, resolves included.
func (s PromSetting) AlertmanagerConfig(webhookURL string) string {
	return fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: %s
  group_interval: %s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, promDuration(s.GroupWait), promDuration(s.GroupInterval), webhookURL)
}

// promDuration writes d as Prometheus reads durations ("1m", "15s",
// "500ms", "0s").
func promDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// String describes the setting in one line, for tables.
func (s PromSetting) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scrape %s, eval %s, `%s`, for %s, group_wait %s, group_interval %s",
		promDuration(s.Scrape), promDuration(s.Eval), s.Expr(), promDuration(s.For), promDuration(s.GroupWait), promDuration(s.GroupInterval))
	return b.String()
}
