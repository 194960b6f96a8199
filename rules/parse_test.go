package rules

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/mciv/mciv/detect"
)

const goodFile = `groups:
  - name: network
    rules:
      - alert: TCPRetransmitRateHigh
        signal: tcp_retransmits_total
        stat: rate            # counter increase / interval seconds
        by: [cluster, host, peer]
        detector: {type: threshold, op: ">", value: 5}
        for: 3s
        keep_firing_for: 5s
        labels: {severity: warning}
        annotations:
          summary: "TCP retransmits on {{ .Labels.host }} at {{ printf \"%.1f\" .Value }}/s"
      - alert: QueryLatencyHigh
        signal: db_query_seconds
        stat: mean
        detector:
          type: threshold
          op: ">="
          value: 0.25
  - name: empty
`

func TestParseGood(t *testing.T) {
	groups, err := Parse("good.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Name != "network" || groups[1].Name != "empty" || len(groups[1].Rules) != 0 {
		t.Fatalf("groups: %+v", groups)
	}
	if got := groups[0].Pos; got != (Pos{"good.yaml", 2, 5}) {
		t.Errorf("group pos %v", got)
	}
	r := groups[0].Rules[0]
	want := &Rule{
		Alert: "TCPRetransmitRateHigh", Group: "network", Signal: "tcp_retransmits_total", Stat: StatRate,
		By:       []string{"cluster", "host", "peer"},
		Detector: detect.ThresholdSpec{Op: detect.OpGT, Value: 5},
		For:      3 * time.Second, KeepFiringFor: 5 * time.Second,
		Labels:      map[string]string{"severity": "warning"},
		Annotations: map[string]string{"summary": `TCP retransmits on {{ .Labels.host }} at {{ printf "%.1f" .Value }}/s`},
		Pos:         Pos{"good.yaml", 4, 9},
		templates:   r.templates,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("rule:\n got %+v\nwant %+v", r, want)
	}
	r2 := groups[0].Rules[1]
	if !reflect.DeepEqual(r2.By, []string{"cluster", "host"}) || r2.Stat != StatMean || r2.For != 0 ||
		r2.Detector != (detect.ThresholdSpec{Op: detect.OpGE, Value: 0.25}) || r2.Labels != nil || r2.Annotations != nil {
		t.Errorf("second rule: %+v", r2)
	}
	set := &Set{Groups: groups}
	if n := len(set.Rules()); n != 2 {
		t.Errorf("Set.Rules: %d rules", n)
	}
}

func TestParseEmptyAndAliases(t *testing.T) {
	for _, src := range []string{"", "# nothing yet\n", "groups:\n", "groups: []\n", "~\n"} {
		g, err := Parse("e.yaml", []byte(src))
		if err != nil || len(g) != 0 {
			t.Errorf("%q: got %v, %v", src, g, err)
		}
	}
	src := `groups:
  - name: g
    rules:
      - alert: A
        signal: s
        stat: count
        detector: &thr {type: threshold, op: "<", value: 1}
        labels: &sev {severity: page}
      - alert: B
        signal: s
        stat: count
        detector: *thr
        labels: *sev
`
	g, err := Parse("a.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	b := g[0].Rules[1]
	if b.Detector != (detect.ThresholdSpec{Op: detect.OpLT, Value: 1}) || b.Labels["severity"] != "page" {
		t.Fatalf("aliased rule: %+v", b)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "everything wrong in one rule, reported together",
			src: `groups:
  - name: g
    rules:
      - alert: A
        signal: tcp_retransmits_total
        stat: p95
        by: [host]
        detector: {type: threshold, op: "=>", value: "5"}
        for: 3
        keep_firing_for: -5s
        lables: {severity: warning}
        annotations:
          summary: "{{ .Labels.host "
          other: "{{ .Vaule }}"
`,
			want: []string{
				`f.yaml:6:15: group "g", rule "A": unknown stat "p95" (one of rate, count, mean, max, p50, p90, p99)`,
				`f.yaml:7:13: group "g", rule "A": by must include cluster: aggregating across hosts is not supported yet`,
				`f.yaml:8:41: group "g", rule "A": detector: unknown operator "=>" (one of >, >=, <, <=)`,
				`f.yaml:8:54: group "g", rule "A": detector value must be a number, not "5"`,
				`f.yaml:9:14: group "g", rule "A": for: "3" is not a duration such as 30s, 5m or 1h30m`,
				`f.yaml:10:26: group "g", rule "A": keep_firing_for must not be negative`,
				`f.yaml:11:9: group "g", rule "A": unknown key "lables" in rule (known: alert, signal, stat, by, detector, for, evidence, keep_firing_for, labels, annotations, actions)`,
				`f.yaml:13:20: group "g", rule "A": annotation "summary": template: summary:1: unclosed action`,
				`f.yaml:14:18: group "g", rule "A": annotation "other": template: other:1:3: executing "other" at <.Vaule>: can't evaluate field Vaule in type rules.TemplateData`,
			},
		},
		{
			name: "duplicates, missing fields, unsupported detectors",
			src: `groups:
  - name: g
    rules:
      - alert: A
        signal: s
        stat: rate
        detector: {type: threshold, op: ">", value: 1}
      - alert: A
        signal: s
        stat: rate
        detector: {type: robust_zscore, threshold: -4}
      - signal: y
        stat: median
        detector: {op: ">"}
      - alert: C
        detector: {type: magic}
  - name: g
    rules:
      - alert: A
        signal: s
        stat: rate
        stat: count
        detector: {type: threshold, value: 1}
`,
			want: []string{
				`f.yaml:8:16: group "g", rule "A": alert "A" already defined at line 4`,
				`f.yaml:11:52: group "g", rule "A": detector: threshold: -4 is out of range (0, 1e+09]`,
				`f.yaml:12:9: group "g", rule 3: missing required key "alert"`,
				`f.yaml:13:15: group "g", rule 3: unknown stat "median" (one of rate, count, mean, max, p50, p90, p99)`,
				`f.yaml:14:19: group "g", rule 3: detector: missing required key "type"`,
				`f.yaml:15:9: group "g", rule "C": missing required key "signal"`,
				`f.yaml:15:9: group "g", rule "C": missing required key "stat"`,
				`f.yaml:16:26: group "g", rule "C": unknown detector type "magic" (supported: threshold, auto, zscore, robust_zscore, ewma, cusum, seasonal, rate_of_change, absence)`,
				`f.yaml:17:11: group "g": group name already used at line 2`,
				`f.yaml:19:16: group "g", rule "A": alert "A" already defined at line 4`,
				`f.yaml:22:9: group "g", rule "A": key "stat" already given at line 21`,
				`f.yaml:23:19: group "g", rule "A": detector: missing required key "op"`,
			},
		},
		{
			name: "labels, annotations and names",
			src: `groups:
  - name: g
    rules:
      - alert: bad.name
        signal: 9lives
        stat: rate
        by: [cluster, host, host, "x-y", alertname]
        detector: {type: threshold, op: ">", value: .inf}
        labels: {alertname: X, host: h, team: "{{ .Labels.host }}", owner: [a]}
        annotations: {"bad key": x}
`,
			want: []string{
				`f.yaml:4:16: group "g", rule "bad.name": alert name "bad.name" must match ^[a-zA-Z_][a-zA-Z0-9_]*$`,
				`f.yaml:5:17: group "g", rule "bad.name": signal "9lives" must match ^[a-zA-Z_:][a-zA-Z0-9_:]*$`,
				`f.yaml:7:29: group "g", rule "bad.name": by: label "host" listed twice`,
				`f.yaml:7:35: group "g", rule "bad.name": by: "x-y" is not a valid label name`,
				`f.yaml:7:42: group "g", rule "bad.name": by: alertname is the rule's name, not a series label`,
				`f.yaml:8:53: group "g", rule "bad.name": detector value must be a finite number, not .inf`,
				`f.yaml:9:18: group "g", rule "bad.name": labels: alertname is set from the rule's alert name`,
				`f.yaml:9:32: group "g", rule "bad.name": labels: "host" is a by label; a rule label would overwrite it`,
				`f.yaml:9:47: group "g", rule "bad.name": labels: label values are not templates (only annotations are)`,
				`f.yaml:9:76: group "g", rule "bad.name": labels: the value of "owner" must be a string, not a list`,
				`f.yaml:10:23: group "g", rule "bad.name": annotations: "bad key" is not a valid name`,
			},
		},
		{
			name: "file structure",
			src: `group:
  - name: g
`,
			want: []string{
				`f.yaml:1:1: unknown key "group" in rules file (known: groups)`,
				`f.yaml:1:1: missing required key "groups"`,
			},
		},
		{
			name: "wrong shapes",
			src: `groups:
  - name: [g]
    rules: {alert: A}
  - just a string
`,
			want: []string{
				`f.yaml:2:11: name must be a string, not a list`,
				`f.yaml:3:12: rules must be a list, not a mapping`,
				`f.yaml:4:5: group must be a mapping, not a scalar`,
			},
		},
		{
			name: "YAML syntax error has a line but no column",
			src:  "groups:\n  - name: g\n    rules\n    - alert: x\n",
			want: []string{`f.yaml:3: invalid YAML: could not find expected ':'`},
		},
		{
			name: "two documents",
			src:  "groups: []\n---\ngroups: []\n",
			want: []string{`f.yaml:2:1: a rules file holds one YAML document; found another`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Parse("f.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error; groups %+v", g)
			}
			if g != nil {
				t.Errorf("groups returned with errors: %+v", g)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not Errors", err)
			}
			got := strings.Split(err.Error(), "\n")
			if len(errs) != len(got) {
				t.Fatalf("Errors has %d entries, message %d lines", len(errs), len(got))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestErrorFields(t *testing.T) {
	_, err := Parse("x.yaml", []byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        signal: s\n        stat: rate\n        detector: {type: threshold, op: '>', value: 1}\n        for: soon\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("got %v", err)
	}
	want := Error{File: "x.yaml", Line: 8, Col: 14, Group: "g", Rule: "A", RuleIndex: 1, Msg: `for: "soon" is not a duration such as 30s, 5m or 1h30m`}
	if errs[0] != want {
		t.Fatalf("got %+v\nwant %+v", errs[0], want)
	}
}

func TestAnnotate(t *testing.T) {
	groups, err := Parse("good.yaml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	r := groups[0].Rules[0]
	got, err := r.Annotate(TemplateData{Labels: map[string]string{"host": "db-1"}, Value: 7.25, Threshold: 5})
	if err != nil {
		t.Fatal(err)
	}
	if want := "TCP retransmits on db-1 at 7.2/s"; got["summary"] != want {
		t.Errorf("summary %q, want %q", got["summary"], want)
	}
	// A missing label renders empty rather than "<no value>".
	got, _ = r.Annotate(TemplateData{Value: 1})
	if got["summary"] != "TCP retransmits on  at 1.0/s" {
		t.Errorf("summary without host: %q", got["summary"])
	}
	// A template that fails at run time still yields an annotation.
	tmpl, err := newTemplate("x", `{{ index .Labels.host 99 }}`)
	if err != nil {
		t.Fatal(err)
	}
	r2 := &Rule{Alert: "R", templates: map[string]*template.Template{"x": tmpl}}
	out, err := r2.Annotate(TemplateData{Labels: map[string]string{"host": "h"}})
	if err == nil || !strings.HasPrefix(out["x"], "<error expanding template: ") {
		t.Fatalf("got %q, %v", out, err)
	}
}
