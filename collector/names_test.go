package collector

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mciv/mciv/bpf"
)

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

func TestProcessCgroup(t *testing.T) {
	root := t.TempDir()
	write := func(pid, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "cgroup"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10", "0::/system.slice/postgresql@15-main.service\n")
	write("11", "12:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n")
	write("12", "0::/\n")
	write("13", "4:memory:/kubepods/pod1/c1\n1:name=systemd:/kubepods/pod1/c1\n")
	for pid, want := range map[int]string{
		10: "/system.slice/postgresql@15-main.service",
		11: "/docker/abc", // hybrid host, unified root: the systemd hierarchy's
		12: "",            // the root
		13: "/kubepods/pod1/c1",
		14: "", // gone
	} {
		if got := processCgroup(root, pid); got != want {
			t.Errorf("pid %d: %q, want %q", pid, got, want)
		}
	}
}

// TestInstanceNamesOnlyKnown: a collector scoped to one network namespace
// drops the database samples and slow queries of instances it did not
// discover (another host's PostgreSQL seen through the binary's uprobes),
// and names them "pid:<id>" otherwise.
func TestInstanceNamesOnlyKnown(t *testing.T) {
	known := &instanceNames{onlyKnown: true}
	known.set(10, "postgres:5432")
	all := &instanceNames{}
	all.set(10, "postgres:5432")
	if got := known.name(10); got != "postgres:5432" {
		t.Errorf("scoped, discovered: %q", got)
	}
	if got := known.name(11); got != "" {
		t.Errorf("scoped, another host's: %q, want none", got)
	}
	if got := all.name(11); got != "pid:11" {
		t.Errorf("unscoped, unknown: %q, want pid:11", got)
	}
	n := names{devices: &deviceNames{sysfs: t.TempDir()}, instances: known}
	for id, want := range map[uint32]bool{10: true, 11: false} {
		_, _, ok := describe(aggSeries{signal: bpf.AggDBQuerySeconds, aux: id}, n)
		if ok != want {
			t.Errorf("db_query_seconds of instance %d published %v, want %v", id, ok, want)
		}
		ev := slowQueryEvent(bpf.PGQueryEvent{Instance: id, DurationNs: 2e9}, "c", "h", time.Now(), n)
		if (ev != nil) != want {
			t.Errorf("slow query of instance %d published %v, want %v", id, ev != nil, want)
		}
	}
}
