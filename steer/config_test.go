package steer

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := Config{
		Agent: true, Cgroup: "/sys/fs/cgroup/unified/app",
		Services: []ServiceConfig{
			{Name: "pay-rw", Address: "127.77.0.1:5432", Role: "rw", Clusters: []string{"pay"}},
			{Name: "pay-ro", Address: "127.77.0.2:5432", Role: "ro", Clusters: []string{"pay", "dr"}},
		},
		Clusters: map[string]ClusterConfig{
			"pay": {Members: map[string]string{"pg0": "10.0.0.10:5432"}},
			"dr":  {Members: map[string]string{"pg0": "10.0.1.10:5432"}},
		},
	}
	good.SetDefaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if (Config{}).Validate() != nil {
		t.Fatal("a disabled section is valid")
	}
	for name, tc := range map[string]struct {
		mut  func(*Config)
		want string
	}{
		"no cgroup":     {func(c *Config) { c.Cgroup = "" }, "steer.cgroup"},
		"bad role":      {func(c *Config) { c.Services[0].Role = "rx" }, "role"},
		"rw two":        {func(c *Config) { c.Services[0].Clusters = []string{"pay", "dr"} }, "rw service names one cluster"},
		"unknown clust": {func(c *Config) { c.Services[1].Clusters = []string{"nope"} }, "not under steer.clusters"},
		"bad address":   {func(c *Config) { c.Services[0].Address = "payments" }, "want ip:port"},
		"dup address":   {func(c *Config) { c.Services[1].Address = "127.77.0.1:5432" }, "listed twice"},
		"bad member":    {func(c *Config) { c.Clusters["pay"] = ClusterConfig{Members: map[string]string{"pg0": "x"}} }, "members.pg0"},
		"no services":   {func(c *Config) { c.Services = nil }, "at least one"},
	} {
		c := good
		c.Services = append([]ServiceConfig(nil), good.Services...)
		c.Clusters = map[string]ClusterConfig{"pay": good.Clusters["pay"], "dr": good.Clusters["dr"]}
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
