package ruletest

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rulesFile = `groups:
  - name: g
    rules:
      - alert: RetransHigh
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
        for: 2s
        labels: {severity: warning}
        annotations:
          summary: "{{ .Labels.host }} at {{ .Value }}/s"
      - alert: SlowDisk
        signal: disk_io_seconds
        stat: p99
        by: [cluster, host, device]
        detector: {type: threshold, op: ">", value: 0.1}
`

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultRulesTests(t *testing.T) {
	files, err := filepath.Glob("../../rules/default/tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no default rule tests: %v", err)
	}
	for _, f := range files {
		r := RunFile(f)
		if r.Failed() {
			t.Errorf("%s: errors %v, tests %+v", f, r.Errors, r.Tests)
		}
	}
}

func TestPassAndFail(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "r.yaml", rulesFile)
	tf := write(t, dir, "r.test.yaml", `rule_files: [r.yaml]
tests:
  - name: fires
    input_series:
      - series: 'tcp_retransmits_total{cluster="c", host="h"}'
        values: '0+10x5'
      - series: 'disk_io_seconds{cluster="c", host="h", device="nvme0n1"}'
        values: '0.01 0.5 0.5 _ 0.5'
    alert_rule_test:
      - eval_time: 2s
        alertname: RetransHigh
        exp_alerts: []
      - eval_time: 3s
        alertname: RetransHigh
        exp_alerts:
          - exp_labels: {cluster: c, host: h, severity: warning}
            exp_annotations: {summary: "h at 10/s"}
      - eval_time: 2s
        alertname: SlowDisk
        exp_alerts:
          - exp_labels: {cluster: c, host: h, device: nvme0n1}
  - name: wrong expectation
    input_series:
      - series: 'tcp_retransmits_total{cluster="c", host="h"}'
        values: '0+10x5'
    alert_rule_test:
      - eval_time: 5s
        alertname: RetransHigh
        exp_alerts:
          - exp_labels: {cluster: c, host: other}
`)
	r := RunFile(tf)
	if len(r.Errors) != 0 || len(r.Tests) != 2 {
		t.Fatalf("%+v", r)
	}
	if f := r.Tests[0].Failures; len(f) != 0 {
		t.Fatalf("first test failed: %v", f)
	}
	f := r.Tests[1].Failures
	if len(f) != 1 || !strings.Contains(f[0], "r.test.yaml:27:20:") ||
		!strings.Contains(f[0], `exp: [{labels: {cluster="c", host="other"}`) ||
		!strings.Contains(f[0], `got: [{labels: {cluster="c", host="h", severity="warning"}`) {
		t.Fatalf("failures: %q", f)
	}
	if !r.Failed() {
		t.Fatal("not failed")
	}

	var buf bytes.Buffer
	if err := WriteJUnit(&buf, []FileResult{r}); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if doc.Tests != 2 || doc.Failures != 1 || doc.Suites[0].Cases[1].Failure == nil || doc.Suites[0].Cases[0].Failure != nil {
		t.Fatalf("junit: %s", buf.String())
	}
}

func TestFileErrorsHavePositions(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "r.yaml", rulesFile)
	write(t, dir, "bad.yaml", "groups:\n  - name: g\n    rules:\n      - alert: X\n        signal: s\n        stat: median\n        detector: {type: threshold, op: '>', value: 1}\n")
	for _, tc := range []struct {
		body string
		want []string
	}{
		{"rule_files: [r.yaml]\ntests:\n  - name: x\n    inputs: []\n", []string{"t.yaml:4: field inputs not found"}},
		{"rule_files: [bad.yaml]\ntests: [{name: x}]\n", []string{`bad.yaml:6:15: group "g", rule "X": unknown stat "median"`}},
		{"rule_files: [r.yaml]\nevaluation_interval: 1 second\ntests: [{name: x}]\n", []string{"t.yaml:2:22: evaluation_interval:"}},
		{"tests: [{name: x}]\n", []string{"t.yaml: rule_files: no rules files named"}},
	} {
		r := RunFile(write(t, dir, "t.yaml", tc.body))
		if len(r.Errors) != len(tc.want) {
			t.Errorf("%q: errors %v, want %v", tc.body, r.Errors, tc.want)
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(r.Errors[i].Error(), w) {
				t.Errorf("%q: error %q, want %q", tc.body, r.Errors[i], w)
			}
		}
	}

	// Input errors fail the test, with the position of the bad value.
	r := RunFile(write(t, dir, "t.yaml", `rule_files: [r.yaml]
tests:
  - name: bad input
    input_series:
      - series: 'tcp_retransmits_total{host=h}'
        values: '1 2'
      - series: 'tcp_retransmits_total'
        values: '1 x 2'
    alert_rule_test:
      - eval_time: 1s
        alertname: NoSuchRule
`))
	if len(r.Tests) != 1 {
		t.Fatalf("%+v", r)
	}
	got := strings.Join(r.Tests[0].Failures, "\n")
	for _, w := range []string{"t.yaml:5:17: series", "t.yaml:8:17: values: term \"x\": \"x\" is not a number", `t.yaml:10:20: alertname "NoSuchRule": no such rule`} {
		if !strings.Contains(got, w) {
			t.Errorf("failures %q lack %q", got, w)
		}
	}
}
