package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNotifierPolicyLoadsAndReportsPositions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := func(string) string { return "" }
	good := write("good.yaml", `host: h1
notifier:
  route:
    receiver: oncall
    group_by: [alertname, host]
    group_wait: 30s
    routes:
      - matchers: ['severity="critical"']
        receiver: pager
        continue: true
  receivers:
    - name: oncall
    - name: pager
      slack_channel: C0PAGER
  inhibit_rules:
    - source_matchers: [severity=critical]
      target_matchers: [severity=warning]
      equal: [host]
slack:
  token: xoxb-x
  channel: "#oncall"
  interactivity:
    listen: 127.0.0.1:0
    signing_secret: s3cret
`)
	cfg, err := Load(good, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Notifier.Receivers) != 2 || len(cfg.Notifier.InhibitRules) != 1 || cfg.Notifier.Route == nil || cfg.Slack.Interactivity.SigningSecret != "s3cret" {
		t.Errorf("loaded %+v", cfg.Notifier)
	}
	for _, tc := range []struct{ src, want string }{
		{"host: h1\nnotifier:\n  route:\n    routes:\n      - matchers: ['host~db']\n", "bad1.yaml:5:20: route.matchers"},
		{"host: h1\nnotifier:\n  route:\n    receiver: nobody\n", "bad2.yaml:4:5: route: receiver \"nobody\" is not defined"},
		{"host: h1\nnotifier:\n  inhibit_rules:\n    - source_matchers: [a=b]\n", "bad3.yaml:4:7: inhibit rule: source_matchers and target_matchers are required"},
	} {
		name := strings.SplitN(tc.want, ":", 2)[0]
		_, err := Load(write(name, tc.src), env)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, tc.want)) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}
