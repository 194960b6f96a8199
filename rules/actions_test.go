package rules

import (
	"strings"
	"testing"
)

const actionRule = `groups:
  - name: pg
    rules:
      - alert: PrimarySick
        signal: db_query_seconds
        stat: p99
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 1}
        actions:
%s
`

func TestFailoverActionParsed(t *testing.T) {
	for name, tc := range map[string]struct {
		actions string
		want    FailoverAction
	}{
		"defaults":      {"          - failover: {}", FailoverAction{When: "primary"}},
		"null":          {"          - failover:", FailoverAction{When: "primary"}},
		"with approval": {"          - failover: {when: primary, approval: true, dry_run: true}", FailoverAction{When: "primary", Approval: true, DryRun: true}},
	} {
		gs, err := Parse("f.yaml", []byte(strings.Replace(actionRule, "%s", tc.actions, 1)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := gs[0].Rules[0].FailoverPolicy()
		if got == nil || *got != tc.want {
			t.Errorf("%s: policy %+v, want %+v", name, got, tc.want)
		}
	}
	gs, err := Parse("f.yaml", []byte(strings.Replace(actionRule, "        actions:\n%s\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if gs[0].Rules[0].FailoverPolicy() != nil {
		t.Error("a rule without actions asks for failover")
	}
}

func TestFailoverActionErrors(t *testing.T) {
	for name, tc := range map[string]struct{ actions, want string }{
		"when replica": {"          - failover: {when: replica}", `f.yaml:10:30: group "pg", rule "PrimarySick": failover: when "replica": only "primary"`},
		"bad bool":     {"          - failover: {approval: maybe}", `f.yaml:10:34: group "pg", rule "PrimarySick": failover: approval must be true or false, not "maybe"`},
		"unknown key":  {"          - failover: {now: true}", `f.yaml:10:24: group "pg", rule "PrimarySick": unknown key "now" in failover`},
		"unknown act":  {"          - reboot: {}", `f.yaml:10:13: group "pg", rule "PrimarySick": unknown key "reboot" in action`},
		"not a list":   {"            failover: {}", `f.yaml:10:13: group "pg", rule "PrimarySick": actions must be a list`},
	} {
		_, err := Parse("f.yaml", []byte(strings.Replace(actionRule, "%s", tc.actions, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v\nwant it to contain %s", name, err, tc.want)
		}
	}
}
