package actuator

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.Cooldown.D() != 30*time.Minute || c.MinVantage != 2 || !*c.PatroniView || c.PeerMatch != "addr_port" ||
		c.Durable != DefaultDurable || len(c.Signals) == 0 {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	bad := Config{Enabled: true, PeerMatch: "dns", LeaseTTL: Duration(time.Second), LeaseMargin: Duration(2 * time.Second),
		Clusters: map[string]PatroniCluster{"x": {}}}
	bad.SetDefaults()
	err := bad.Validate()
	for _, want := range []string{"peer_match", "lease_margin", "no patroni endpoints"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	var c Config
	in := "persist: 7s\nrules:\n  r: {when: primary, dry_run: true}\nhosts: {db-1: pg0}\n"
	if err := yaml.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if c.Persist.D() != 7*time.Second || !c.Rules["r"].DryRun || c.member("db-1") != "pg0" || c.host("pg0") != "db-1" || c.member("db-2") != "db-2" {
		t.Fatalf("decoded %+v", c)
	}
	if err := yaml.Unmarshal([]byte("persist: soon\n"), &c); err == nil {
		t.Fatal("a bad duration was accepted")
	}
	out, err := yaml.Marshal(Config{Persist: Duration(time.Second)})
	if err != nil || !strings.Contains(string(out), "persist: 1s") {
		t.Fatalf("marshal: %s %v", out, err)
	}
}
