package route

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

type policy struct {
	Route     *Route     `yaml:"route"`
	Receivers []Receiver `yaml:"receivers"`
}

func load(t *testing.T, src string) (*Tree, error) {
	t.Helper()
	var p policy
	if err := yaml.Unmarshal([]byte(src), &p); err != nil {
		return nil, err
	}
	return New(p.Route, p.Receivers)
}

const example = `
route:
  receiver: oncall
  group_by: [alertname, host]
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['cluster=~"db-.*"']
      receiver: dba
      group_wait: 30s
receivers:
  - name: oncall
    slack_channel: "#oncall"
  - name: pager
    slack_channel: C0PAGER
  - name: dba
`

func TestMatch(t *testing.T) {
	tree, err := load(t, example)
	if err != nil {
		t.Fatal(err)
	}
	names := func(ls map[string]string) string {
		var out []string
		for _, m := range tree.Match(ls) {
			out = append(out, m.Receiver.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		ls   map[string]string
		want string
	}{
		{map[string]string{"severity": "warning"}, "oncall"},
		{map[string]string{"severity": "critical"}, "pager"},
		{map[string]string{"severity": "critical", "cluster": "db-a"}, "pager,dba"},
		{map[string]string{"cluster": "db-a"}, "dba"},
	} {
		if got := names(tc.ls); got != tc.want {
			t.Errorf("Match(%v) = %s, want %s", tc.ls, got, tc.want)
		}
	}
	m := tree.Match(map[string]string{"cluster": "db-a"})[0]
	if m.GroupWait != 30*time.Second || m.RepeatInterval != time.Hour || strings.Join(m.GroupBy, ",") != "alertname,host" {
		t.Errorf("inherited settings wrong: %+v", m)
	}
}

func TestGroupKey(t *testing.T) {
	tree, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := tree.Match(nil)[0]
	a := m.GroupKey(map[string]string{"alertname": "R", "host": "h1", "other": "x"})
	b := m.GroupKey(map[string]string{"alertname": "R", "host": "h1", "other": "y"})
	c := m.GroupKey(map[string]string{"alertname": "R", "host": "h2"})
	if a != b || a == c {
		t.Errorf("group keys: %s %s %s", a, b, c)
	}
	if !strings.HasPrefix(a, DefaultReceiver+".") {
		t.Errorf("group key %s does not start with the receiver", a)
	}
}

func TestErrorsHavePositions(t *testing.T) {
	for _, tc := range []struct {
		src, want string
	}{
		{"route:\n  receiver: x\n  bogus: 1\n", "3:3: route: unknown field \"bogus\""},
		{"route:\n  routes:\n    - matchers: ['host~x']\n", "3:18: route.matchers"},
		{"route:\n  group_wait: soon\n", "2:15: route.group_wait"},
		{"route:\n  receiver: nobody\n", "2:3: route: receiver \"nobody\" is not defined"},
		{"receivers:\n  - name: a\n  - name: a\n", "3:5: receiver \"a\" defined twice"},
		{"receivers:\n  - slack_channel: x\n", "2:5: receiver: name is required"},
	} {
		_, err := load(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.src, err, tc.want)
		}
		if _, ok := errors.AsType[*Error](err); !ok {
			t.Errorf("%q: error %T is not a *route.Error", tc.src, err)
		}
	}
}
