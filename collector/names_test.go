package collector

import "testing"

func TestInstanceNames(t *testing.T) {
	var in instanceNames
	if n := in.name(7); n != "pid:7" {
		t.Errorf("unknown instance named %q", n)
	}
	in.set(7, "postgres:5432")
	if n := in.name(7); n != "postgres:5432" {
		t.Errorf("named %q", n)
	}
	n := names{devices: &deviceNames{sysfs: t.TempDir()}, instances: &in}
	if got := n.instance(7); got != "postgres:5432" {
		t.Errorf("names.instance = %q", got)
	}
	if got := n.device(8 << 20); got != "8:0" {
		t.Errorf("names.device = %q", got)
	}
}
