package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Problem is a missing precondition of the collector and how to fix it.
type Problem struct {
	What string `json:"what"`
	Fix  string `json:"fix"`
}

const (
	btfPath       = "/sys/kernel/btf/vmlinux"
	tracefsPath   = "/sys/kernel/tracing"
	debugfsTracer = "/sys/kernel/debug/tracing"
	kprobePMU     = "/sys/bus/event_source/devices/kprobe"
)

// Capability numbers (include/uapi/linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// hostFacts are the preconditions Preflight checks.
type hostFacts struct {
	root    bool // effective uid 0
	caps    bool // CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, effective
	btf     bool // kernel BTF present
	tracefs bool // tracefs mounted
}

func currentFacts() hostFacts {
	return hostFacts{
		root:    os.Geteuid() == 0,
		caps:    haveBPFCaps(),
		btf:     exists(btfPath),
		tracefs: tracefsDir() != "",
	}
}

// problemsFor says what is missing, with the fix.
func problemsFor(f hostFacts) []Problem {
	var ps []Problem
	if !f.root && !f.caps {
		ps = append(ps, Problem{
			What: "not root and no CAP_BPF+CAP_PERFMON: the kernel will not load eBPF programs",
			Fix:  "run as root (sudo mciv up), or: sudo setcap cap_bpf,cap_perfmon,cap_sys_resource+ep \"$(command -v mciv)\"",
		})
	}
	if !f.btf {
		ps = append(ps, Problem{
			What: "no kernel BTF at " + btfPath + ": the CO-RE probes cannot be fitted to this kernel",
			Fix:  "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (the default of current Debian, Ubuntu, RHEL and Fedora kernels)",
		})
	}
	if !f.tracefs {
		ps = append(ps, Problem{
			What: "tracefs is not mounted: classic tracepoints cannot be attached",
			Fix:  "mount -t tracefs tracefs " + tracefsPath,
		})
	}
	return ps
}

// Preflight says what this host lacks for the collector (root or
// capabilities, kernel BTF, tracefs) and how to fix each; nil if nothing.
func Preflight() []Problem {
	return problemsFor(currentFacts())
}

// MountTracefs mounts tracefs at /sys/kernel/tracing unless it is mounted
// there or under debugfs already. It needs root.
func MountTracefs() error {
	if tracefsDir() != "" {
		return nil
	}
	if err := unix.Mount("tracefs", tracefsPath, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs at %s: %w (fix: mount -t tracefs tracefs %s as root)", tracefsPath, err, tracefsPath)
	}
	if tracefsDir() == "" {
		return fmt.Errorf("mounted tracefs at %s but it has no events directory", tracefsPath)
	}
	return nil
}

// Doctor checks the preconditions, then tries every way of attaching every
// hook (detaching each right away), and for each hook also whether the
// kernel would take an fentry or kprobe program on its function. It backs
// `mciv doctor`. The error is for failures of Doctor itself, not of hooks.
func Doctor(ctx context.Context) ([]HookStatus, []Problem, error) {
	problems := Preflight()
	_ = rlimit.RemoveMemlock() // best effort; a failure shows in the rows
	p := newProbes()
	defer p.close()
	var rows []HookStatus
	for _, o := range append(objects(), dbSockObject(DefaultSlowQueryThreshold, runtime.GOARCH), pgObject(DefaultSlowQueryThreshold), mysqlObject(DefaultSlowQueryThreshold)) {
		spec, openErr := o.load()
		if openErr == nil {
			openErr = p.add(spec)
		}
		for _, h := range o.hooks() {
			if err := ctx.Err(); err != nil {
				return rows, problems, fmt.Errorf("doctor: %w", err)
			}
			rows = append(rows, doctorHook(p, h, openErr)...)
		}
	}
	packets := doctorPackets(p, newCgroupNames("/proc/self/mountinfo").roots[cgroupSockets])
	rows = append(rows, packets...)
	rows = append(rows, doctorPostgres(p)...)
	rows = append(rows, doctorQueryPaths(rows, "/proc", newCgroupNames("/proc/self/mountinfo").roots[cgroupSockets])...)
	rows = append(rows, doctorMySQL(p)...)
	return rows, problems, nil
}

// Hook names of the packet programs' rows in `mciv doctor`.
const (
	hookCgroupIngress = "cgroup_inet_ingress"
	hookCgroupEgress  = "cgroup_inet_egress"
)

// doctorPackets attaches the packet programs to the cgroup (v2, mounted
// at v2root) this process runs in, and detaches them again. They let
// every packet pass: whoever else is in that cgroup is not disturbed.
func doctorPackets(p *probes, v2root string) []HookStatus {
	rows := []HookStatus{{Name: hookCgroupIngress, Type: HookTypeCgroupSKB}, {Name: hookCgroupEgress, Type: HookTypeCgroupSKB}}
	dir := ""
	if v2root != "" {
		if cg := cgroupV2Of("/proc", os.Getpid()); cg != "" {
			dir = filepath.Join(v2root, filepath.Clean("/"+cg))
		}
	}
	for i, w := range cgroupWays(dir) {
		if dir == "" {
			rows[i].Error = "no cgroup v2 hierarchy mounted: PostgreSQL query latency comes from the socket tracepoints (fix: mount -t cgroup2 none /sys/fs/cgroup/unified)"
			continue
		}
		err := p.try(w)
		p.detachAll()
		if err != nil {
			rows[i].Error = explain(w.typ, err)
			if errors.Is(err, unix.EPERM) {
				rows[i].Error += " (cgroup_skb needs CAP_NET_ADMIN)"
			}
		} else {
			rows[i].Attached = true
		}
	}
	return rows
}

// doctorQueryPaths says, for each running PostgreSQL server, how the
// collector would measure its query latency, given the rows of the hooks
// tried: through its packets, the socket tracepoints or the USDT probes.
func doctorQueryPaths(rows []HookStatus, procRoot, v2root string) []HookStatus {
	up := map[string]bool{}
	for _, r := range rows {
		if r.Attached {
			up[r.Name] = true
		}
	}
	var out []HookStatus
	for pid, port := range scanPostgres(procRoot, installedPostgres).postmasters {
		inst := pgInstance(port)
		if !up["sock_recv_length"] || !up["sock_send_length"] {
			out = append(out, queryPathRow(inst, QueryPathUSDT, "the socket tracepoints do not attach"))
			continue
		}
		dir, err := packetCgroup(procRoot, v2root, pid)
		switch {
		case err != nil:
			out = append(out, queryPathRow(inst, QueryPathSocketTracepoints, "not through its packets: "+err.Error()))
		case !up[hookCgroupIngress] || !up[hookCgroupEgress]:
			out = append(out, queryPathRow(inst, QueryPathSocketTracepoints, "not through its packets: the cgroup_skb programs do not attach"))
		default:
			out = append(out, queryPathRow(inst, QueryPathPackets, "cgroup_skb on "+dir+"; "+samplingPolicy(DefaultQuerySampleQPS)))
		}
	}
	return out
}

// doctorHook tries every way of attaching h, detaching right away, and
// the fentry and kprobe alternatives on its kernel function.
func doctorHook(p *probes, h hookSpec, openErr error) []HookStatus {
	var rows []HookStatus
	for _, w := range h.ways {
		row := HookStatus{Name: h.name, Type: w.typ}
		err := openErr
		if err == nil {
			err = p.try(w)
			p.detachAll()
		}
		if err != nil {
			row.Error = explain(w.typ, err)
		} else {
			row.Attached = true
		}
		rows = append(rows, row)
	}
	if h.kfunc != "" {
		rows = append(rows, checkFentry(h.name, h.kfunc), checkKprobe(h.name, h.kfunc))
	}
	return rows
}

// emptyProgram returns 0: enough to learn whether the kernel accepts a
// program of a type on a hook.
func emptyProgram() asm.Instructions {
	return asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
}

// checkFentry loads and attaches an empty fentry program on kfunc.
func checkFentry(hook, kfunc string) HookStatus {
	row := HookStatus{Name: hook, Type: HookTypeFentry}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "mciv_doctor",
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceFEntry,
		AttachTo:     kfunc,
		Instructions: emptyProgram(),
		License:      "GPL",
	})
	if err == nil {
		var l link.Link
		l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		if err == nil {
			l.Close()
		}
		prog.Close()
	}
	if err != nil {
		row.Error = explain(HookTypeFentry, err)
	} else {
		row.Attached = true
	}
	return row
}

// checkKprobe attaches an empty kprobe program on kfunc, unless the kernel
// plainly has no kprobes.
func checkKprobe(hook, kfunc string) HookStatus {
	row := HookStatus{Name: hook, Type: HookTypeKprobe}
	if dir := tracefsDir(); dir != "" && !exists(filepath.Join(dir, "kprobe_events")) && !exists(kprobePMU) {
		row.Error = "kprobes not available: CONFIG_KPROBES off (no kprobe_events in tracefs, no kprobe PMU)"
		return row
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "mciv_doctor",
		Type:         ebpf.Kprobe,
		Instructions: emptyProgram(),
		License:      "GPL",
	})
	if err == nil {
		var l link.Link
		l, err = link.Kprobe(kfunc, prog, nil)
		if err == nil {
			l.Close()
		}
		prog.Close()
	}
	if err != nil {
		row.Error = explain(HookTypeKprobe, err)
	} else {
		row.Attached = true
	}
	return row
}

// tracefsDir returns where tracefs is mounted, or "". It asks statfs for
// the file system's type, which needs no read access to the directory
// (tracefs is root-only).
func tracefsDir() string {
	for _, d := range []string{tracefsPath, debugfsTracer} {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil && st.Type == unix.TRACEFS_MAGIC {
			return d
		}
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// haveBPFCaps reports whether the effective capabilities allow loading
// tracing programs: CAP_BPF with CAP_PERFMON (5.8+), or CAP_SYS_ADMIN.
func haveBPFCaps() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(capSysAdmin) || has(capBPF) && has(capPerfmon)
}

// doctorPostgres attaches the PostgreSQL probes to every server binary
// found (installed or running) and detaches again.
func doctorPostgres(p *probes) []HookStatus {
	a := newPGAttacher(p, pgProbes)
	defer a.close()
	for _, b := range scanPostgres("/proc", installedPostgres).binaries.list {
		_, _ = a.attach(b) // failures show in the rows
	}
	return a.statuses()
}

// doctorMySQL attaches the MySQL probes to every server binary found
// (installed or running) and detaches again.
func doctorMySQL(p *probes) []HookStatus {
	a := newMySQLAttacher(p)
	defer a.close()
	for _, b := range scanMySQL("/proc", installedMySQL).binaries.list {
		_, _ = a.attach(b) // failures show in the rows
	}
	return a.statuses()
}
