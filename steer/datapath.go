package steer

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/mciv/mciv/bpf"
)

// Address families as the kernel numbers them.
const (
	afInet  = 2
	afInet6 = 10
)

// Hook is one of the cgroup hooks steering attaches, and what became of it.
type Hook struct {
	Name     string `json:"name"`
	Attached bool   `json:"attached"`
	Error    string `json:"error,omitempty"`
}

// Datapath is the loaded steering program attached to one cgroup (v2):
// the kernel side of an Agent. Its methods are safe for concurrent use.
type Datapath struct {
	objs   bpf.SteerObjects
	links  []link.Link
	hooks  []Hook
	cgroup string

	mu sync.Mutex
}

// NewDatapath loads the steering object and attaches its connect and
// getpeername programs to the cgroup (v2) directory cgroupPath. IPv4
// hooks are required; an IPv6 hook the kernel refuses is reported in
// Hooks and leaves IPv6 connects unsteered.
func NewDatapath(cgroupPath string) (*Datapath, error) {
	if err := CheckCgroupV2(cgroupPath); err != nil {
		return nil, err
	}
	_ = rlimit.RemoveMemlock()
	d := &Datapath{cgroup: cgroupPath}
	if err := bpf.LoadSteerObjects(&d.objs, nil); err != nil {
		return nil, fmt.Errorf("steer: load the eBPF object: %w", err)
	}
	for _, h := range []struct {
		name     string
		prog     *ebpf.Program
		attach   ebpf.AttachType
		required bool
	}{
		{"cgroup/connect4", d.objs.SteerConnect4, ebpf.AttachCGroupInet4Connect, true},
		{"cgroup/getpeername4", d.objs.SteerGetpeername4, ebpf.AttachCgroupInet4GetPeername, true},
		{"cgroup/connect6", d.objs.SteerConnect6, ebpf.AttachCGroupInet6Connect, false},
		{"cgroup/getpeername6", d.objs.SteerGetpeername6, ebpf.AttachCgroupInet6GetPeername, false},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: h.attach, Program: h.prog})
		if err != nil {
			d.hooks = append(d.hooks, Hook{Name: h.name, Error: err.Error()})
			if h.required {
				d.Close()
				return nil, fmt.Errorf("steer: attach %s to %s: %w", h.name, cgroupPath, err)
			}
			continue
		}
		d.links = append(d.links, l)
		d.hooks = append(d.hooks, Hook{Name: h.name, Attached: true})
	}
	return d, nil
}

// Hooks says which hooks are attached.
func (d *Datapath) Hooks() []Hook { return append([]Hook(nil), d.hooks...) }

// Cgroup is the cgroup directory the programs are attached to.
func (d *Datapath) Cgroup() string { return d.cgroup }

// Close detaches the programs and frees the maps: connects are no longer
// steered, sockets already steered keep their backend.
func (d *Datapath) Close() error {
	var errs []error
	for _, l := range d.links {
		errs = append(errs, l.Close())
	}
	d.links = nil
	errs = append(errs, d.objs.Close())
	return errors.Join(errs...)
}

// Entry is one service address and what the datapath steers it to.
type Entry struct {
	Service   netip.AddrPort
	ServiceID uint32
	// Backend is the address connects go to; invalid (zero) means the
	// service has no backend now and connects are left alone.
	Backend   netip.AddrPort
	BackendID uint32
}

func steerAddr(ap netip.AddrPort) bpf.SteerSteerAddr {
	var a bpf.SteerSteerAddr
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		a.Family = afInet
		b := ip.As4()
		copy(a.Addr[:], b[:])
	} else {
		a.Family = afInet6
		a.Addr = ip.As16()
	}
	// The port is kept in network byte order: store its bytes big-endian
	// in the host-order field.
	p := ap.Port()
	a.Port = uint16(p>>8) | uint16(p&0xff)<<8
	return a
}

// Set installs or replaces the entry for e.Service.
func (d *Datapath) Set(e Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := steerAddr(e.Service)
	val := bpf.SteerSteerBackend{ServiceId: e.ServiceID}
	if e.Backend.IsValid() {
		val.To = steerAddr(e.Backend)
		val.BackendId = e.BackendID
	}
	if err := d.objs.Routes.Update(&key, &val, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("steer: set route of %s: %w", e.Service, err)
	}
	return nil
}

// Delete removes the entry of a service address.
func (d *Datapath) Delete(service netip.AddrPort) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := steerAddr(service)
	if err := d.objs.Routes.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("steer: delete route of %s: %w", service, err)
	}
	return nil
}

// CountKey names a (service, backend) pair of the connects counter;
// BackendID 0 counts connects to a service with no backend.
type CountKey struct{ ServiceID, BackendID uint32 }

// Counts returns the steered connects per service and backend since load.
func (d *Datapath) Counts() (map[CountKey]uint64, error) {
	out := map[CountKey]uint64{}
	var k bpf.SteerSteerCountKey
	var per []uint64
	it := d.objs.Connects.Iterate()
	for it.Next(&k, &per) {
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[CountKey{k.ServiceId, k.BackendId}] = sum
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("steer: read connects: %w", err)
	}
	return out, nil
}

// CgroupV2Mount returns where the cgroup v2 hierarchy is mounted (on a
// hybrid host beside v1, e.g. /sys/fs/cgroup/unified), from mountinfo.
func CgroupV2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("cgroup v2: %w", err)
	}
	defer f.Close()
	mp, err := parseCgroup2Mount(bufio.NewScanner(f))
	if err != nil {
		return "", err
	}
	return mp, nil
}

func parseCgroup2Mount(sc *bufio.Scanner) (string, error) {
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && i >= 5 {
				if fields[i+1] == "cgroup2" {
					return fields[4], nil
				}
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("cgroup v2: mountinfo: %w", err)
	}
	return "", errors.New("cgroup v2 is not mounted (steering attaches to a cgroup v2 directory: mount -t cgroup2 none /sys/fs/cgroup/unified)")
}

// CheckCgroupV2 says why path is not a cgroup v2 directory, or nil.
func CheckCgroupV2(path string) error {
	if path == "" {
		return errors.New("steer: no cgroup configured (steer.cgroup: the application's cgroup v2 directory)")
	}
	mp, err := CgroupV2Mount()
	if err != nil {
		return fmt.Errorf("steer: %w", err)
	}
	if path != mp && !strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/") {
		return fmt.Errorf("steer: %s is not under the cgroup v2 mount %s", path, mp)
	}
	if _, err := os.Stat(path + "/cgroup.procs"); err != nil {
		return fmt.Errorf("steer: %s is not a cgroup directory: %w", path, err)
	}
	return nil
}
