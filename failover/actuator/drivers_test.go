package actuator

import (
	"testing"
)

func TestPatroniDrivers(t *testing.T) {
	cfg := Config{Clusters: map[string]PatroniCluster{
		"payments": {Endpoints: []string{"http://10.0.0.1:8008"}, Username: "patroni", PasswordEnv: "PW"},
	}}
	ds, err := PatroniDrivers(cfg, func(k string) string { return map[string]string{"PW": "s3cret"}[k] }, nil)
	if err != nil || ds["payments"] == nil || ds["payments"].Name() != "patroni" {
		t.Fatalf("drivers %v, err %v", ds, err)
	}
	bad := Config{Clusters: map[string]PatroniCluster{"x": {Endpoints: []string{"ftp://nope"}}}}
	if _, err := PatroniDrivers(bad, nil, nil); err == nil {
		t.Fatal("a bad endpoint was accepted")
	}
	if s := cfg.Clusters["payments"].String(); s != `patroni{endpoints=[http://10.0.0.1:8008] user="patroni" password=set}` {
		t.Errorf("String() = %s", s)
	}
}
