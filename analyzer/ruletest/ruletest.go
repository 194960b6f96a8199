// Package ruletest runs unit tests of rules files in the manner of
// `promtool test rules`: a test file names rules files, gives input series
// in a compact notation and says which alerts must be firing, with which
// labels and annotations, at given times. The rules are evaluated by the
// analyzer's own engine (package analyzer/eval) on synthetic sample
// batches, deterministically: no clock, no NATS.
//
//	rule_files: [../network.yaml]      # relative to the test file
//	evaluation_interval: 1s            # one batch per host per interval
//	tests:
//	  - name: retransmit storm
//	    input_series:
//	      - series: 'tcp_retransmits_total{cluster="c1", host="db1"}'
//	        values: '0+1x10 11+20x10'  # counters are cumulative, as in Prometheus
//	    alert_rule_test:
//	      - eval_time: 15s
//	        alertname: TCPRetransmitRateHigh
//	        exp_alerts:
//	          - exp_labels: {cluster: c1, host: db1, severity: warning}
//	            exp_annotations: {summary: "..."}
//
// Value i of a series is the sample of the interval that ends at
// i × interval. Series are grouped into one batch per host (labels cluster
// and host; "test" when absent) per interval; hosts keep sending (empty)
// batches until the last eval_time. How values are read depends on the
// series kind (key kind, or from the signal's name): counter (`_total`) —
// cumulative values, the interval's increase is the difference to the
// previous value (a decrease is a counter reset); histogram (`_seconds`)
// — the interval's one observation, so that its p50/p90/p99/max/mean are
// the value (quantiles within 0.8 %); gauge (anything else) — the value.
//
// exp_alerts lists the alerts firing at eval_time (pending alerts are
// not listed), with all their labels except alertname. Unlike promtool,
// annotations are compared on the keys exp_annotations names only, so
// that a test need not repeat a long runbook text.
package ruletest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// DefaultInterval is the evaluation interval of a test file that does not
// give one.
const DefaultInterval = time.Second

// epoch is time zero of every test: eval_time is counted from it.
var epoch = time.Unix(0, 0).UTC()

// FileResult is the outcome of one test file.
type FileResult struct {
	File string
	// Errors are problems with the file itself (it does not parse, its
	// rules files are invalid): no test of it ran.
	Errors []error
	// Tests are the file's tests, in file order.
	Tests []TestResult
}

// Failed reports whether the file has an error or a failed test.
func (r FileResult) Failed() bool {
	if len(r.Errors) > 0 {
		return true
	}
	for _, t := range r.Tests {
		if len(t.Failures) > 0 {
			return true
		}
	}
	return false
}

// TestResult is the outcome of one test of a file.
type TestResult struct {
	Name string
	// Failures describe every failed expectation and input error.
	Failures []string
	Duration time.Duration
}

type testFile struct {
	RuleFiles          []string    `yaml:"rule_files"`
	EvaluationInterval yaml.Node   `yaml:"evaluation_interval"`
	Tests              []testGroup `yaml:"tests"`
}

type testGroup struct {
	Name          string        `yaml:"name"`
	Interval      yaml.Node     `yaml:"interval"`
	InputSeries   []inputSeries `yaml:"input_series"`
	AlertRuleTest []alertTest   `yaml:"alert_rule_test"`
}

type inputSeries struct {
	Series yaml.Node `yaml:"series"`
	Values yaml.Node `yaml:"values"`
	Kind   yaml.Node `yaml:"kind"`
}

type alertTest struct {
	EvalTime  yaml.Node  `yaml:"eval_time"`
	Alertname string     `yaml:"alertname"`
	ExpAlerts []expAlert `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

// RunFile runs the tests of one test file.
func RunFile(path string) FileResult {
	res := FileResult{File: path}
	data, err := os.ReadFile(path)
	if err != nil {
		res.Errors = append(res.Errors, fmt.Errorf("%s: cannot read: %w", path, err))
		return res
	}
	var tf testFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		res.Errors = append(res.Errors, yamlErrors(path, err)...)
		return res
	}
	if len(tf.RuleFiles) == 0 {
		res.Errors = append(res.Errors, rules.Error{File: path, Msg: "rule_files: no rules files named"})
	}
	if len(tf.Tests) == 0 {
		res.Errors = append(res.Errors, rules.Error{File: path, Msg: "tests: no tests"})
	}
	interval, err := durationNode(&tf.EvaluationInterval, DefaultInterval)
	if err != nil {
		res.Errors = append(res.Errors, nodeError(path, &tf.EvaluationInterval, "evaluation_interval: %v", err))
	}
	if len(res.Errors) > 0 {
		return res
	}
	dir := filepath.Dir(path)
	var paths []string
	for _, rf := range tf.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(dir, rf)
		}
		paths = append(paths, rf)
	}
	set, err := rules.LoadFiles(paths...)
	if err != nil {
		var list rules.Errors
		if errors.As(err, &list) {
			for _, e := range list {
				res.Errors = append(res.Errors, e)
			}
		} else {
			res.Errors = append(res.Errors, fmt.Errorf("%s: rule_files: %w", path, err))
		}
		return res
	}
	for i := range tf.Tests {
		res.Tests = append(res.Tests, runTest(path, set, &tf.Tests[i], i+1, interval))
	}
	return res
}

// yamlErrors turns a yaml.v3 error into file:line errors.
func yamlErrors(path string, err error) []error {
	lineRE := regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var out []error
	for _, m := range msgs {
		e := rules.Error{File: path, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := lineRE.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
		}
		out = append(out, e)
	}
	return out
}

func nodeError(path string, n *yaml.Node, format string, args ...any) rules.Error {
	return rules.Error{File: path, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
}

// durationNode reads a duration such as 1s or 1m30s; def when absent.
func durationNode(n *yaml.Node, def time.Duration) (time.Duration, error) {
	if n.Kind == 0 || n.Tag == "!!null" {
		return def, nil
	}
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("must be a duration such as 1s or 1m")
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 1s or 1m", n.Value)
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative")
	}
	return d, nil
}

type hostID struct{ cluster, host string }

// series is one parsed input series.
type series struct {
	host   hostID
	wire   wire.Series // signal, labels and kind; the value is set per interval
	points []point
	last   float64 // last cumulative counter value
	seen   bool    // a counter value was seen
}

func runTest(path string, set *rules.Set, tg *testGroup, index int, interval time.Duration) TestResult {
	began := time.Now()
	tr := TestResult{Name: tg.Name}
	if tr.Name == "" {
		tr.Name = fmt.Sprintf("test %d", index)
	}
	fail := func(format string, args ...any) { tr.Failures = append(tr.Failures, fmt.Sprintf(format, args...)) }
	if iv, err := durationNode(&tg.Interval, interval); err != nil {
		fail("%s", nodeError(path, &tg.Interval, "interval: %v", err))
	} else {
		interval = iv
	}
	if interval <= 0 {
		fail("%s: evaluation interval must be positive", path)
	}

	var inputs []*series
	hosts := map[hostID]bool{}
	for _, in := range tg.InputSeries {
		signal, labels, err := parseSeries(in.Series.Value)
		if err != nil {
			fail("%s", nodeError(path, &in.Series, "%v", err))
			continue
		}
		pts, err := expandValues(in.Values.Value)
		if err != nil {
			fail("%s", nodeError(path, &in.Values, "%v", err))
			continue
		}
		kind, err := seriesKind(signal, in.Kind.Value)
		if err != nil {
			fail("%s", nodeError(path, &in.Kind, "%v", err))
			continue
		}
		s := &series{host: hostID{"test", "test"}, points: pts}
		var rest []wire.Label
		for _, l := range labels {
			switch l.Name {
			case "cluster":
				s.host.cluster = l.Value
			case "host":
				s.host.host = l.Value
			default:
				rest = append(rest, l)
			}
		}
		if err := errors.Join(wire.ValidToken(s.host.cluster), wire.ValidToken(s.host.host)); err != nil {
			fail("%s", nodeError(path, &in.Series, "cluster and host: %v", err))
			continue
		}
		s.wire = wire.Series{Signal: signal, Labels: rest, Kind: kind}
		inputs = append(inputs, s)
		hosts[s.host] = true
	}

	type check struct {
		at time.Duration
		t  *alertTest
	}
	var checks []check
	for i := range tg.AlertRuleTest {
		at := &tg.AlertRuleTest[i]
		d, err := durationNode(&at.EvalTime, -1)
		switch {
		case err != nil:
			fail("%s", nodeError(path, &at.EvalTime, "eval_time: %v", err))
			continue
		case d < 0:
			fail("%s: alert_rule_test %d: missing eval_time", path, i+1)
			continue
		case at.Alertname == "":
			fail("%s", nodeError(path, &at.EvalTime, "alert_rule_test: missing alertname"))
			continue
		}
		if !slices.ContainsFunc(set.Rules(), func(r *rules.Rule) bool { return r.Alert == at.Alertname }) {
			fail("%s", nodeError(path, &at.EvalTime, "alertname %q: no such rule in rule_files", at.Alertname))
			continue
		}
		checks = append(checks, check{d, at})
	}
	if len(tr.Failures) > 0 {
		tr.Duration = time.Since(began)
		return tr
	}
	slices.SortStableFunc(checks, func(a, b check) int { return int(a.at - b.at) })

	order := slices.SortedFunc(maps.Keys(hosts), func(a, b hostID) int {
		return strings.Compare(a.cluster+"\xff"+a.host, b.cluster+"\xff"+b.host)
	})
	eng := eval.New(set, eval.Options{})
	step := 0
	advance := func(upTo time.Duration) {
		for ; time.Duration(step)*interval <= upTo; step++ {
			end := epoch.Add(time.Duration(step) * interval)
			for _, h := range order {
				b := &wire.Batch{Cluster: h.cluster, Host: h.host, Seq: uint64(step + 1), Start: end.Add(-interval), Interval: interval}
				for _, s := range inputs {
					if s.host != h || step >= len(s.points) || s.points[step].absent {
						continue
					}
					if ws, ok := s.sample(s.points[step].v); ok {
						b.Series = append(b.Series, ws)
					}
				}
				if _, err := eng.Eval(b, end); err != nil {
					fail("%s: evaluating interval ending at %v: %v", path, time.Duration(step)*interval, err)
				}
			}
		}
	}
	for _, c := range checks {
		advance(c.at)
		// Annotations are compared on the keys the test names, so that
		// long runbook texts need not be repeated in tests.
		keys := map[string]bool{}
		var expS []string
		for _, e := range c.t.ExpAlerts {
			expS = append(expS, describe(e.ExpLabels, e.ExpAnnotations))
			for k := range e.ExpAnnotations {
				keys[k] = true
			}
		}
		var gotS []string
		for _, a := range eng.Firing(epoch.Add(c.at)) {
			if a.Rule != c.t.Alertname {
				continue
			}
			lbls := maps.Clone(a.Labels)
			delete(lbls, "alertname")
			ann := maps.Clone(a.Annotations)
			maps.DeleteFunc(ann, func(k, _ string) bool { return !keys[k] })
			gotS = append(gotS, describe(lbls, ann))
		}
		slices.Sort(gotS)
		slices.Sort(expS)
		if !slices.Equal(gotS, expS) {
			fail("%s: alertname: %s, time: %v,\n        exp: %s\n        got: %s",
				nodeError(path, &c.t.EvalTime, "%s", tr.Name).Error(), c.t.Alertname, c.at, list(expS), list(gotS))
		}
	}
	tr.Duration = time.Since(began)
	return tr
}

// sample returns the wire series for input value v, and false when the
// value gives no sample (the first value of a counter is its start).
func (s *series) sample(v float64) (wire.Series, bool) {
	ws := s.wire
	switch ws.Kind {
	case wire.KindCounter:
		prev, seen := s.last, s.seen
		s.last, s.seen = v, true
		if !seen {
			return ws, false
		}
		inc := v - prev
		if inc < 0 { // a counter reset
			inc = v
		}
		ws.Value = inc
	case wire.KindGauge:
		ws.Value = v
	case wire.KindHistogram:
		h := &wire.Histogram{Count: 1, Sum: v}
		if !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 {
			h.Buckets = []wire.Bucket{{Index: histo.IndexOf(v), Count: 1}}
		}
		ws.Hist = h
	}
	return ws, true
}

// seriesKind is the kind given, or the one the signal's name implies.
func seriesKind(signal, given string) (wire.Kind, error) {
	switch given {
	case "counter":
		return wire.KindCounter, nil
	case "gauge":
		return wire.KindGauge, nil
	case "histogram":
		return wire.KindHistogram, nil
	case "":
	default:
		return 0, fmt.Errorf("kind %q: one of counter, gauge, histogram", given)
	}
	switch {
	case strings.HasSuffix(signal, "_total"):
		return wire.KindCounter, nil
	case strings.HasSuffix(signal, "_seconds"):
		return wire.KindHistogram, nil
	}
	return wire.KindGauge, nil
}

func describe(labels, annotations map[string]string) string {
	return fmt.Sprintf("{labels: %s, annotations: %s}", kv(labels), kv(annotations))
}

func kv(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+strconv.Quote(m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func list(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	return "[" + strings.Join(s, ", ") + "]"
}
