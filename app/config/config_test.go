package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mciv.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) string { return "" }

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load("", func(k string) string {
		if k == "MCIV_SLACK_TOKEN" {
			return "xoxb-secret"
		}
		if k == "MCIV_SLACK_CHANNEL" {
			return "#oncall"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster != "default" || time.Duration(cfg.Collector.Interval) != time.Second || !cfg.Slack.Enabled() {
		t.Fatalf("got %+v", cfg)
	}
	if strings.Contains(cfg.Slack.String(), "secret") {
		t.Fatal("Slack.String shows the token")
	}
}

func TestLoadFile(t *testing.T) {
	p := write(t, `
cluster: payments
host: db-1
collector: {interval: 250ms}
slack: {token: xoxb-1, channel: C1, api_url: "http://127.0.0.1:9/api/"}
`)
	cfg, err := Load(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster != "payments" || cfg.Host != "db-1" || time.Duration(cfg.Collector.Interval) != 250*time.Millisecond || cfg.Slack.APIURL == "" {
		t.Fatalf("got %+v", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"unknown key":   {"clustr: x\n", "line 1"},
		"bad duration":  {"collector:\n  interval: fast\n", "line 2:13"},
		"bad cluster":   {"cluster: a.b\n", "cluster"},
		"half slack":    {"slack: {token: x}\n", "both token and channel"},
		"tiny interval": {"collector: {interval: 1ms}\n", "at least 10ms"},
	} {
		_, err := Load(write(t, tc.body), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, tc.want)
		}
	}
}
