package steer

import (
	"fmt"
	"os"
	"path/filepath"
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
	// Agent is the running agent's status, if its status file exists.
	Agent *Status `json:"agent,omitempty"`
}

// Doctor checks whether this host can steer: cgroup v2 mounted, and the
// steering program loads and attaches (to a scratch cgroup it removes
// again). statusFile is read for the running agent's state ("" skips).
func Doctor(statusFile string) Report {
	var r Report
	if statusFile != "" {
		if st, err := ReadStatus(statusFile); err == nil {
			r.Agent = &st
		}
	}
	mp, err := CgroupV2Mount()
	if err != nil {
		r.Problem = "no steering: " + err.Error()
		r.Fix = "mount cgroup v2 (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy"
		return r
	}
	r.CgroupV2 = mp
	if os.Geteuid() != 0 {
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
	d, err := NewDatapath(dir)
	if err != nil {
		r.Problem = "no steering: " + err.Error()
		r.Fix = "a kernel with BPF cgroup sock_addr hooks (cgroup/connect4, getpeername4: Linux 5.8+) and socket local storage; applications then dial the service addresses unsteered"
		return r
	}
	r.Hooks = d.Hooks()
	_ = d.Close()
	return r
}
