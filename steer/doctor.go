package steer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Report is what `mciv doctor` says about steering on this host.
type Report struct {
	// CgroupV2 is where cgroup v2 is mounted ("" if not).
	CgroupV2 string `json:"cgroup_v2"`
	// Hooks are the hooks a trial attach to a scratch cgroup got.
	Hooks []Hook `json:"hooks"`
	// Problem says why this host cannot steer, and Fix what to do ("" if it can).
	Problem string `json:"problem,omitempty"`
	Fix     string `json:"fix,omitempty"`
	// Warning says what works only in part (an optional hook missing).
	Warning string `json:"warning,omitempty"`
	// Agent is the running agent's status, if its status file exists.
	Agent *Status `json:"agent,omitempty"`
}

// Doctor checks whether this host can steer: cgroup v2 mounted, and the
// steering program loads and attaches (to a scratch cgroup it removes
// again). statusFile is read for the running agent's state ("" skips).
// A host that cannot steer gets a Problem that starts with "no steering"
// and a Fix; the agent on such a host attaches nothing (applications dial
// the service addresses unsteered).
func Doctor(statusFile string) Report {
	return doctorOn(doctorHost{
		mountinfo: "/proc/self/mountinfo", euid: os.Geteuid,
		attach: func(dir string) ([]Hook, error) {
			d, err := NewDatapath(dir)
			if err != nil {
				return nil, err
			}
			defer d.Close()
			return d.Hooks(), nil
		},
	}, statusFile)
}

// doctorHost is what Doctor asks of the host; tests stand in for a host
// without cgroup v2 or without the hooks.
type doctorHost struct {
	mountinfo string
	euid      func() int
	// attach loads and attaches the steering program to the cgroup dir,
	// returns the hooks, and detaches again.
	attach func(dir string) ([]Hook, error)
}

// Fixes Doctor suggests.
const (
	fixCgroupV2 = "mount cgroup v2 (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy=1"
	fixKernel   = "a kernel with BPF cgroup sock_addr hooks (cgroup/connect4 and cgroup/getpeername4: Linux 5.8+, CONFIG_CGROUP_BPF) and BPF socket local storage"
)

func doctorOn(h doctorHost, statusFile string) Report {
	var r Report
	if statusFile != "" {
		if st, err := ReadStatus(statusFile); err == nil {
			r.Agent = &st
		}
	}
	mp, err := cgroupV2MountIn(h.mountinfo)
	if err != nil {
		r.Problem = "no steering: " + err.Error()
		r.Fix = fixCgroupV2
		return r
	}
	r.CgroupV2 = mp
	if h.euid() != 0 {
		r.Problem = "no steering check: not root (attaching cgroup programs needs CAP_BPF and CAP_NET_ADMIN)"
		r.Fix = "run `sudo mciv doctor`"
		return r
	}
	dir := filepath.Join(mp, fmt.Sprintf("mciv-doctor-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		r.Problem = "no steering: cannot make a scratch cgroup: " + err.Error()
		r.Fix = "check that " + mp + " is writable by root"
		return r
	}
	defer func() {
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	hooks, err := h.attach(dir)
	if err != nil {
		r.Problem = "no steering: this kernel does not run the steering program: " + err.Error() +
			"; applications dial the service addresses unsteered"
		r.Fix = fixKernel
		return r
	}
	r.Hooks = hooks
	var missing, effects []string
	for _, hk := range hooks {
		if hk.Attached {
			continue
		}
		missing = append(missing, hk.Name)
		switch hk.Name {
		case "cgroup/connect6":
			effects = append(effects, "IPv6 connects are not steered")
		case "cgroup/getpeername6":
			effects = append(effects, "steered IPv6 connects show the backend's address to getpeername")
		}
	}
	if len(missing) > 0 {
		r.Warning = fmt.Sprintf("partial steering: %s not attached (%s)", strings.Join(missing, ", "), strings.Join(effects, "; "))
	}
	return r
}
