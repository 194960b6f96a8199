package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const voicePhoneYAML = `
cluster: payments
host: db-1
voice:
  engines: espeak
  severities: [critical, page]
  format: mp3
  timeout: 20s
oncall:
  people:
    - {name: alice, phone: "+15551230001", slack: U0ALICE}
    - {name: bob, phone: "+15551230002"}
  rotations:
    - {name: primary, people: [alice, bob], handoff: "2026-01-05 09:00", length: 168h, time_zone: Europe/Berlin}
  policies:
    - name: critical
      steps:
        - {after: 0m, call: [primary]}
        - {after: 10m, call: [everyone]}
  quotas: {per_person_per_hour: 4}
twilio:
  account_sid: AC0123
  from: "+15551230000"
  public_url: https://mciv.example.com
`

func TestVoiceOnCallTwilioSections(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mciv.yaml")
	if err := os.WriteFile(p, []byte(voicePhoneYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MCIV_TWILIO_AUTH_TOKEN": "tok"}
	cfg, err := Load(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Voice.Engines != "espeak" || cfg.Voice.Timeout != 20*time.Second || len(cfg.Voice.Severities) != 2 {
		t.Errorf("voice %+v", cfg.Voice)
	}
	if !cfg.OnCall.Enabled() || cfg.OnCall.Policies[0].Steps[1].After != 10*time.Minute || cfg.OnCall.Quotas.PerPersonPerHour != 4 {
		t.Errorf("oncall %+v", cfg.OnCall)
	}
	if !cfg.Twilio.Enabled() || cfg.Twilio.AuthToken != "tok" {
		t.Errorf("twilio %v", cfg.Twilio)
	}

	// Without the token Twilio is half configured: an error.
	if _, err := Load(p, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "auth_token") {
		t.Errorf("Load without the token: %v", err)
	}
	bad := strings.Replace(voicePhoneYAML, "call: [primary]", "call: [tertiary]", 1)
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), `"tertiary"`) {
		t.Errorf("Load with an unknown target: %v", err)
	}
}
