package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFailoverSection(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mciv.yaml")
	yml := `
cluster: payments
host: db-1
failover:
  enabled: true
  dry_run: true
  persist: 5s
  cooldown: 45m
  rules:
    pg_latency: {when: primary, approval: true}
  clusters:
    payments:
      endpoints: ["http://10.0.0.1:8008"]
      username: patroni
      password_env: PATRONI_PASSWORD
`
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Failover
	if !f.Enabled || !f.DryRun || f.Persist.D() != 5*time.Second || f.Cooldown.D() != 45*time.Minute ||
		!f.Rules["pg_latency"].Approval || f.Clusters["payments"].PasswordEnv != "PATRONI_PASSWORD" {
		t.Fatalf("failover section: %+v", f)
	}
	bad := `
cluster: payments
host: db-1
failover:
  enabled: true
  rules:
    pg_latency: {when: replica}
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, func(string) string { return "" }); err == nil {
		t.Fatal("when: replica was accepted")
	}
}
