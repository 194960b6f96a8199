package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// names is the collector's labelNamer.
type names struct {
	devices   *deviceNames
	instances *instanceNames
	cgroups   *cgroupNames // nil: no cgroup labels on TCP and disk signals
}

func (n names) device(dev uint32) string  { return n.devices.name(dev) }
func (n names) instance(id uint32) string { return n.instances.name(id) }
func (n names) cgroup(id uint32) string   { return n.instances.cgroupOf(id) }
func (n names) cgroupPath(h cgroupHierarchy, id uint64) string {
	return n.cgroups.name(h, id)
}

// instanceNames maps the instance ids the kernel keys database samples by
// (the postmaster's pid for PostgreSQL) to instance labels such as
// "postgres:5432". Safe for concurrent use.
type instanceNames struct {
	mu      sync.Mutex
	names   map[uint32]string
	cgroups map[uint32]string
	// onlyKnown: an instance the collector did not discover has no name
	// (its samples are another host's: see Config.NetNS).
	onlyKnown bool
}

// setCgroup records the control group of instance id ("" for none).
func (in *instanceNames) setCgroup(id uint32, cgroup string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cgroups == nil {
		in.cgroups = make(map[uint32]string)
	}
	in.cgroups[id] = cgroup
}

// cgroupOf returns the control group of instance id, "" if none is known.
func (in *instanceNames) cgroupOf(id uint32) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cgroups[id]
}

// processCgroup returns the control group of process pid under procRoot:
// its cgroup v2 path (the "0::" line of /proc/PID/cgroup), else (a v1 or
// hybrid host) the systemd hierarchy's; "" when it is the root or
// unreadable.
func processCgroup(procRoot string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	var v2, systemd string
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case parts[1] == "name=systemd":
			systemd = parts[2]
		}
	}
	cg := v2
	if cg == "" || cg == "/" {
		cg = systemd // a hybrid host whose unified hierarchy is unused
	}
	if cg == "/" {
		return ""
	}
	return cg
}

// set names the instance id.
func (in *instanceNames) set(id uint32, name string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.names == nil {
		in.names = make(map[uint32]string)
	}
	in.names[id] = name
}

// name returns the label of instance id, or if unknown "pid:<id>" ("" with
// onlyKnown).
func (in *instanceNames) name(id uint32) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if n, ok := in.names[id]; ok {
		return n
	}
	if in.onlyKnown {
		return ""
	}
	return fmt.Sprintf("pid:%d", id)
}
