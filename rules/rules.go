// Package rules is mciv's rules-file format: YAML files shaped like
// Prometheus rule groups, with a statistical detector where Prometheus has
// an expression. Parsing is strict (unknown keys, duplicate names, bad
// durations, templates that do not parse are errors) and reports every
// error at once, each with file:line:col, the way `promtool check rules`
// does.
//
//	groups:
//	  - name: network
//	    rules:
//	      - alert: TCPRetransmitRateHigh
//	        signal: tcp_retransmits_total
//	        stat: rate
//	        by: [cluster, host]
//	        detector: {type: threshold, op: ">", value: 5}
//	        for: 3s
//	        keep_firing_for: 5s
//	        labels: {severity: warning}
//	        annotations:
//	          summary: "retransmits on {{ .Labels.host }} at {{ printf \"%.1f\" .Value }}/s"
//
// The default rules SREs start from are embedded in package
// github.com/mciv/mciv/rules/default, with their unit tests in
// rules/default/tests (run by package rules/ruletest, `mciv rules test`).
package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"time"

	"github.com/mciv/mciv/detect"
)

// Stat is the statistic a rule computes from each interval's series of its
// signal, per label set of its `by` labels.
type Stat string

// Statistics.
const (
	// StatRate is the increase per second: the sum of the counters'
	// increases (or of the histograms' observation counts) divided by the
	// interval in seconds.
	StatRate Stat = "rate"
	// StatCount is the sum of the counters' increases, or the number of
	// observations of the histograms, during the interval.
	StatCount Stat = "count"
	// StatMean is the mean observation of the histograms (sum / count), or
	// the mean of the gauges.
	StatMean Stat = "mean"
	// StatMax is the largest gauge value, or the largest observation of
	// the histograms (the midpoint of the highest non-empty bucket).
	StatMax Stat = "max"
	// Quantiles of the observations of the histograms of one label set
	// during the interval, merged (package internal/histo; within 0.8 %).
	StatP50 Stat = "p50"
	StatP90 Stat = "p90"
	StatP99 Stat = "p99"
)

// Additive reports whether the stat of a label set that sent no samples
// during an interval is 0. Collectors send only the counters and histograms
// that changed, so an absent rate or count is 0, while an absent mean or
// maximum is unknown.
func (s Stat) Additive() bool { return s == StatRate || s == StatCount }

// Quantile returns the quantile a stat stands for (0.99 for p99), and
// false for stats that are not quantiles.
func (s Stat) Quantile() (float64, bool) {
	switch s {
	case StatP50:
		return 0.5, true
	case StatP90:
		return 0.9, true
	case StatP99:
		return 0.99, true
	}
	return 0, false
}

// Pos is a position in a rules file.
type Pos struct {
	File string
	Line int // 1-based; 0 when unknown
	Col  int // 1-based; 0 when unknown
}

// String formats the position as file:line:col, leaving out what is unknown.
func (p Pos) String() string {
	s := p.File
	if p.Line > 0 {
		s += fmt.Sprintf(":%d", p.Line)
		if p.Col > 0 {
			s += fmt.Sprintf(":%d", p.Col)
		}
	}
	return s
}

// Set is a validated set of rule groups, loaded from one or more files.
// Alert names are unique within a set. A Set is not modified after
// loading and may be shared between goroutines.
type Set struct {
	Groups []Group
}

// Rules returns every rule of the set, in file and group order.
func (s *Set) Rules() []*Rule {
	if s == nil {
		return nil
	}
	var out []*Rule
	for i := range s.Groups {
		out = append(out, s.Groups[i].Rules...)
	}
	return out
}

// NumRules is the number of rules in the set.
func (s *Set) NumRules() int {
	if s == nil {
		return 0
	}
	n := 0
	for i := range s.Groups {
		n += len(s.Groups[i].Rules)
	}
	return n
}

// NumGroups is the number of groups in the set.
func (s *Set) NumGroups() int {
	if s == nil {
		return 0
	}
	return len(s.Groups)
}

// Group is a named list of rules.
type Group struct {
	Name  string
	Rules []*Rule
	Pos   Pos
}

// defaultBy is the grouping of a rule that does not say `by`.
func defaultBy() []string { return []string{"cluster", "host"} }

// Rule is one alerting rule.
type Rule struct {
	// Alert is the alert's name (its alertname label).
	Alert string
	// Group is the name of the rule's group.
	Group string
	// Signal is the signal the rule watches, e.g. tcp_retransmits_total.
	Signal string
	// Stat is what is computed from each interval's series of the signal.
	Stat Stat
	// By are the labels the series are grouped by; one alert per label set.
	// They always include cluster and host.
	By []string
	// Detector judges the stat of each label set.
	Detector detect.Spec
	// For is how long the detector must fire before the alert fires.
	For time.Duration
	// Evidence, when not nil, replaces For: the alert fires once the
	// detector's verdicts have accumulated enough supporting time.
	Evidence *Evidence
	// KeepFiringFor is how long the alert keeps firing once the detector
	// is quiet.
	KeepFiringFor time.Duration
	// Labels are added to the alert's labels.
	Labels map[string]string
	// Annotations are text/template templates rendered with TemplateData.
	Annotations map[string]string
	// Actions are what a firing alert of this rule may trigger (failover).
	Actions []Action
	// Pos is where the rule is defined.
	Pos Pos

	templates map[string]*template.Template
}

// TemplateData is what annotation templates see: {{ .Labels.host }},
// {{ .Value }}, {{ .Threshold }}, {{ .Baseline }}, {{ .Score }}, and
// {{ .Correlated }}: what else is anomalous on the host when the alert
// fires ("together with disk latency on nvme0n1: storage suspected"), or
// "" (it is also the annotation `correlated`).
type TemplateData struct {
	Labels     map[string]string
	Value      float64
	Threshold  float64
	Baseline   float64
	Score      float64
	Correlated string
}

// Annotate renders the rule's annotations. An annotation whose template
// fails is rendered as the error text, so that the alert still goes out;
// the returned error names every failure.
func (r *Rule) Annotate(d TemplateData) (map[string]string, error) {
	if len(r.templates) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(r.templates))
	var errs []string
	var b strings.Builder
	for name, t := range r.templates {
		b.Reset()
		if err := t.Execute(&b, d); err != nil {
			msg := fmt.Sprintf("<error expanding template: %v>", err)
			out[name] = msg
			errs = append(errs, fmt.Sprintf("annotation %q: %v", name, err))
			continue
		}
		out[name] = b.String()
	}
	if len(errs) > 0 {
		return out, errors.New(strings.Join(errs, "; "))
	}
	return out, nil
}

// newTemplate parses one annotation template.
func newTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=zero").Parse(text)
}

// SameDefinition reports whether two rules are defined alike: the same
// name, group, signal, stat, grouping, detector, timing, labels and
// annotations, wherever they are written. A reload keeps the alert state
// of rules whose definition did not change.
func SameDefinition(a, b *Rule) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Pos, y.Pos = Pos{}, Pos{}
	x.templates, y.templates = nil, nil
	return reflect.DeepEqual(x, y)
}
