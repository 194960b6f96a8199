package collector

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func TestProblemsFor(t *testing.T) {
	all := hostFacts{root: true, caps: true, btf: true, tracefs: true}
	if ps := problemsFor(all); len(ps) != 0 {
		t.Fatalf("problems on a complete host: %v", ps)
	}
	capsOnly := all
	capsOnly.root = false
	if ps := problemsFor(capsOnly); len(ps) != 0 {
		t.Fatalf("CAP_BPF+CAP_PERFMON without root: %v", ps)
	}
	tests := []struct {
		name  string
		facts hostFacts
		want  string // in What
		fix   string // in Fix
	}{
		{"not root", hostFacts{btf: true, tracefs: true}, "not root", "sudo"},
		{"no BTF", hostFacts{root: true, tracefs: true}, "BTF", "CONFIG_DEBUG_INFO_BTF=y"},
		{"no tracefs", hostFacts{root: true, btf: true}, "tracefs", "mount -t tracefs tracefs /sys/kernel/tracing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsFor(tt.facts)
			if len(ps) != 1 || !strings.Contains(ps[0].What, tt.want) || !strings.Contains(ps[0].Fix, tt.fix) {
				t.Fatalf("got %+v, want one problem about %q fixed by %q", ps, tt.want, tt.fix)
			}
		})
	}
	if ps := problemsFor(hostFacts{}); len(ps) != 3 {
		t.Fatalf("nothing there: %d problems, want 3: %v", len(ps), ps)
	}
}

func requireKernel(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireFile(t, "/sys/kernel/btf/vmlinux", "the kernel's BTF, for CO-RE eBPF")
	if err := MountTracefs(); err != nil {
		testenv.Missing(t, "tracefs: "+err.Error())
	}
}

func TestPreflightOnThisHost(t *testing.T) {
	requireKernel(t)
	if ps := Preflight(); len(ps) != 0 {
		t.Fatalf("Preflight as root with BTF and tracefs: %+v", ps)
	}
	if err := MountTracefs(); err != nil {
		t.Fatalf("MountTracefs when mounted: %v", err)
	}
}

func TestDoctor(t *testing.T) {
	requireKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, problems, err := Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Errorf("problems: %+v", problems)
	}
	byType := make(map[string]HookStatus)
	for _, r := range rows {
		t.Logf("%-20s %-10s attached=%-5v %s", r.Name, r.Type, r.Attached, r.Error)
		if r.Name == "tcp_retransmit_skb" {
			byType[r.Type] = r
		}
		if !r.Attached && r.Error == "" {
			t.Errorf("row %s/%s: not attached and no reason", r.Name, r.Type)
		}
	}
	for _, typ := range []string{HookTypeTPBTF, HookTypeTracepoint} {
		if r, ok := byType[typ]; !ok || !r.Attached {
			t.Errorf("tcp_retransmit_skb via %s: %+v", typ, r)
		}
	}
	for _, typ := range []string{HookTypeFentry, HookTypeKprobe} {
		if _, ok := byType[typ]; !ok {
			t.Errorf("no %s row", typ)
		}
	}
	// Every hook of every object, and the PostgreSQL probes when the
	// server is installed, attach on this kind of machine; only the
	// fentry and kprobe alternatives may not.
	names := map[string]bool{}
	for _, r := range rows {
		if r.Attached {
			names[r.Name] = true
		}
	}
	var want []string
	for _, o := range append(objects(), dbSockObject(DefaultSlowQueryThreshold, runtime.GOARCH)) {
		for _, h := range o.hooks() {
			want = append(want, h.name)
		}
	}
	if _, err := os.Stat(debianPostgres); err == nil {
		for _, p := range pgProbes {
			want = append(want, pgHookName(p.name))
		}
	}
	if newCgroupNames("/proc/self/mountinfo").roots[cgroupSockets] != "" {
		want = append(want, hookCgroupIngress, hookCgroupEgress)
	}
	for _, n := range want {
		if !names[n] {
			t.Errorf("hook %s attached no way", n)
		}
	}
}

// TestDoctorQueryPaths runs one PostgreSQL in a cgroup of its own and one
// in the test's: Doctor must say that the first is measured through its
// packets and why the second is not.
func TestDoctorQueryPaths(t *testing.T) {
	requireKernel(t)
	if cg := cgroupV2Of("/proc", os.Getpid()); cg != "/" {
		testenv.Missing(t, "this test runs in cgroup "+cg+", not the root")
	}
	own := startPGIn(t, serverCgroup(t))
	root := startPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, _, err := Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]HookStatus{}
	for _, r := range rows {
		got[r.Name] = r
	}
	if r := got[queryPathHook(own.Instance())]; r.Type != QueryPathPackets || !r.Attached {
		t.Errorf("server in its own cgroup: %+v, want %s", r, QueryPathPackets)
	}
	if r := got[queryPathHook(root.Instance())]; r.Type != QueryPathSocketTracepoints || !strings.Contains(r.Note, "root cgroup") {
		t.Errorf("server in the root cgroup: %+v, want %s and why", r, QueryPathSocketTracepoints)
	}
}
