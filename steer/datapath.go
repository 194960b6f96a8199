package steer

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

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
	// Pinned: the link is pinned in bpffs, so it outlives the agent.
	Pinned bool `json:"pinned,omitempty"`
	// Adopted: the link was pinned by an earlier agent and taken over
	// (its program replaced in place), not attached a second time.
	Adopted bool   `json:"adopted,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Datapath is the loaded steering program attached to one cgroup (v2):
// the kernel side of an Agent. Its methods are safe for concurrent use.
//
// With a pin directory (in bpffs) the maps and links are pinned there:
// Close leaves them, so connects stay steered by the last routes while no
// agent runs; the next OpenDatapath adopts them; Detach removes them.
type Datapath struct {
	objs   bpf.SteerObjects
	links  []link.Link
	hooks  []Hook
	cgroup string
	pinDir string
	// Replaced says why the pinned maps were replaced ("" if adopted or new).
	replaced string

	mu sync.Mutex
}

// NewDatapath loads the steering object and attaches its programs to the
// cgroup (v2) directory cgroupPath, unpinned: Close ends steering.
func NewDatapath(cgroupPath string) (*Datapath, error) { return OpenDatapath(cgroupPath, "") }

// hookSpecs are the hooks, in attach order.
func (d *Datapath) hookSpecs() []hookSpec {
	return []hookSpec{
		{"cgroup/connect4", d.objs.SteerConnect4, ebpf.AttachCGroupInet4Connect, true},
		{"cgroup/getpeername4", d.objs.SteerGetpeername4, ebpf.AttachCgroupInet4GetPeername, true},
		{"cgroup/connect6", d.objs.SteerConnect6, ebpf.AttachCGroupInet6Connect, false},
		{"cgroup/getpeername6", d.objs.SteerGetpeername6, ebpf.AttachCgroupInet6GetPeername, false},
	}
}

type hookSpec struct {
	name     string
	prog     *ebpf.Program
	attach   ebpf.AttachType
	required bool
}

// pinName is the file a hook's link is pinned as.
func pinName(hook string) string {
	return "link_" + strings.ReplaceAll(strings.TrimPrefix(hook, "cgroup/"), "/", "_")
}

// hookNames are the hooks' names, for Detach.
var hookNames = []string{"cgroup/connect4", "cgroup/getpeername4", "cgroup/connect6", "cgroup/getpeername6"}

// OpenDatapath loads the steering object and attaches its connect and
// getpeername programs to the cgroup (v2) directory cgroupPath. IPv4
// hooks are required; an IPv6 hook the kernel refuses is reported in
// Hooks and leaves IPv6 connects unsteered.
//
// pinDir "" pins nothing. Otherwise (a directory in bpffs, made if
// missing; bpffs is mounted at /sys/fs/bpf if it is not) the maps are
// pinned there and reused when already pinned (the routes of the last
// agent stay in force), and each hook's link is pinned there too: a link
// an earlier agent pinned on the same cgroup is adopted by replacing its
// program in place, so the programs are never attached twice.
func OpenDatapath(cgroupPath, pinDir string) (*Datapath, error) {
	if err := CheckCgroupV2(cgroupPath); err != nil {
		return nil, err
	}
	_ = rlimit.RemoveMemlock()
	d := &Datapath{cgroup: cgroupPath, pinDir: pinDir}
	spec, err := bpf.LoadSteer()
	if err != nil {
		return nil, fmt.Errorf("steer: load the eBPF object: %w", err)
	}
	var opts ebpf.CollectionOptions
	if pinDir != "" {
		if err := ensureBPFFS(pinDir); err != nil {
			return nil, err
		}
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinByName
		}
		opts.Maps.PinPath = pinDir
	}
	err = spec.LoadAndAssign(&d.objs, &opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) && pinDir != "" {
		// Maps pinned by an agent with another layout: replace them (the
		// old programs keep the old maps until their links are updated
		// below); routes come back from the bucket.
		d.replaced = err.Error()
		for name := range spec.Maps {
			_ = os.Remove(filepath.Join(pinDir, name))
		}
		err = spec.LoadAndAssign(&d.objs, &opts)
	}
	if err != nil {
		return nil, fmt.Errorf("steer: load the eBPF object: %w", err)
	}
	cgID, err := cgroupID(cgroupPath)
	if err != nil {
		d.objs.Close()
		return nil, err
	}
	for _, h := range d.hookSpecs() {
		l, hk, err := d.attach(h, cgID)
		if err != nil {
			d.hooks = append(d.hooks, Hook{Name: h.name, Error: err.Error()})
			if h.required {
				d.Close()
				return nil, fmt.Errorf("steer: attach %s to %s: %w", h.name, cgroupPath, err)
			}
			continue
		}
		d.links = append(d.links, l)
		d.hooks = append(d.hooks, hk)
	}
	return d, nil
}

// attach adopts the pinned link of h on this cgroup, or attaches (and
// pins) a new one.
func (d *Datapath) attach(h hookSpec, cgID uint64) (link.Link, Hook, error) {
	hk := Hook{Name: h.name}
	var path string
	if d.pinDir != "" {
		path = filepath.Join(d.pinDir, pinName(h.name))
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			info, ierr := l.Info()
			if ierr == nil && info.Cgroup() != nil && info.Cgroup().CgroupId == cgID {
				if err := l.Update(h.prog); err != nil {
					_ = l.Close()
					return nil, hk, fmt.Errorf("adopt the pinned link %s: %w", path, err)
				}
				hk.Attached, hk.Pinned, hk.Adopted = true, true, true
				return l, hk, nil
			}
			// Pinned on another cgroup (the configuration changed), or
			// defunct: detach it and attach anew.
			_ = l.Detach()
			_ = l.Unpin()
			_ = l.Close()
		} else if !errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(path)
		}
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: d.cgroup, Attach: h.attach, Program: h.prog})
	if err != nil {
		return nil, hk, err
	}
	hk.Attached = true
	if path != "" {
		if err := l.Pin(path); err != nil {
			// Steering works while the agent runs; it just does not
			// outlive it (a kernel without bpf_link for cgroups).
			hk.Error = "not pinned: " + err.Error()
		} else {
			hk.Pinned = true
		}
	}
	return l, hk, nil
}

// cgroupID is the kernel's id of a cgroup (v2) directory: its inode.
func cgroupID(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("steer: cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// ensureBPFFS makes dir, mounting bpffs at /sys/fs/bpf first when dir is
// under it and it is not mounted, and checks dir is in bpffs.
func ensureBPFFS(dir string) error {
	const root = "/sys/fs/bpf"
	if isBPFFS(root) != nil && (dir == root || strings.HasPrefix(dir, root+"/")) {
		if err := syscall.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("steer: mount bpffs at %s (to pin steering): %w", root, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("steer: pin directory: %w", err)
	}
	if err := isBPFFS(dir); err != nil {
		return fmt.Errorf("steer: pin directory %s: %w", dir, err)
	}
	return nil
}

const bpffsMagic = 0xcafe4a11

func isBPFFS(dir string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	if uint64(st.Type) != bpffsMagic {
		return errors.New("not in a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)")
	}
	return nil
}

// Hooks says which hooks are attached.
func (d *Datapath) Hooks() []Hook { return append([]Hook(nil), d.hooks...) }

// Cgroup is the cgroup directory the programs are attached to.
func (d *Datapath) Cgroup() string { return d.cgroup }

// PinDir is where the maps and links are pinned ("" if not).
func (d *Datapath) PinDir() string { return d.pinDir }

// Replaced says why the maps an earlier agent pinned were replaced (their
// layout differs from this build's), or "".
func (d *Datapath) Replaced() string { return d.replaced }

// Close releases the agent's handles. Unpinned, that detaches the programs
// and frees the maps: connects are no longer steered. Pinned, the links and
// maps stay in the kernel and connects stay steered by the last routes
// until Detach. Sockets already steered keep their backend either way.
func (d *Datapath) Close() error {
	var errs []error
	for _, l := range d.links {
		errs = append(errs, l.Close())
	}
	d.links = nil
	errs = append(errs, d.objs.Close())
	return errors.Join(errs...)
}

// Detach removes the steering pinned in pinDir: it detaches each pinned
// link from its cgroup (even while another process holds it) and removes
// the pins and the directory. It returns what it did, one line each; a
// pinDir with nothing pinned is not an error.
func Detach(pinDir string) ([]string, error) {
	if pinDir == "" {
		return nil, errors.New("steer detach: no pin directory")
	}
	if _, err := os.Stat(pinDir); errors.Is(err, os.ErrNotExist) {
		return []string{"nothing pinned at " + pinDir + ": no steering to remove"}, nil
	}
	var done []string
	var errs []error
	for _, h := range hookNames {
		path := filepath.Join(pinDir, pinName(h))
		l, err := link.LoadPinnedLink(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if err := l.Detach(); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", h, err))
		}
		if err := l.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin %s: %w", path, err))
		}
		_ = l.Close()
		done = append(done, "detached "+h)
	}
	entries, err := os.ReadDir(pinDir)
	if err != nil {
		errs = append(errs, err)
	}
	var maps []string
	for _, e := range entries {
		if err := os.Remove(filepath.Join(pinDir, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		maps = append(maps, e.Name())
	}
	if len(maps) > 0 {
		done = append(done, "removed the pinned maps "+strings.Join(maps, ", "))
	}
	if err := os.Remove(pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return done, errors.Join(errs...)
}

// MaxBackends is the most backends one service spreads its connects over.
const MaxBackends = len(bpf.SteerSteerBackend{}.T)

// Target is one backend of a service and its weight.
type Target struct {
	Addr   netip.AddrPort
	ID     uint32 // the agent's numbering of backends, never 0
	Weight uint32 // share of connects relative to the others, > 0
}

// Entry is one service address and what the datapath steers it to.
type Entry struct {
	Service   netip.AddrPort
	ServiceID uint32 // 1..1023
	// Backends are where connects go, spread by weight; none means the
	// service has no backend now and connects are left alone.
	Backends []Target
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

// addrPort is steerAddr's inverse.
func addrPort(a bpf.SteerSteerAddr) netip.AddrPort {
	port := a.Port>>8 | a.Port<<8
	if a.Family == afInet {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a.Addr[:4])), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), port)
}

// Set installs or replaces the entry for e.Service.
func (d *Datapath) Set(e Entry) error {
	if e.ServiceID == 0 || e.ServiceID >= 1024 {
		return fmt.Errorf("steer: service id %d of %s: want 1..1023", e.ServiceID, e.Service)
	}
	if len(e.Backends) > MaxBackends {
		return fmt.Errorf("steer: %s: %d backends, at most %d", e.Service, len(e.Backends), MaxBackends)
	}
	key := steerAddr(e.Service)
	val := bpf.SteerSteerBackend{ServiceId: e.ServiceID}
	for i, t := range e.Backends {
		if t.Weight == 0 || t.ID == 0 {
			return fmt.Errorf("steer: %s: backend %s with id %d, weight %d: both must be > 0", e.Service, t.Addr, t.ID, t.Weight)
		}
		val.Total += t.Weight
		val.T[i] = bpf.SteerSteerTarget{To: steerAddr(t.Addr), BackendId: t.ID, Upto: val.Total}
	}
	val.N = uint32(len(e.Backends))
	d.mu.Lock()
	defer d.mu.Unlock()
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

// Entries returns what the routes map holds now (after an adoption: what
// the last agent programmed).
func (d *Datapath) Entries() ([]Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Entry
	var k bpf.SteerSteerAddr
	var v bpf.SteerSteerBackend
	it := d.objs.Routes.Iterate()
	for it.Next(&k, &v) {
		e := Entry{Service: addrPort(k), ServiceID: v.ServiceId}
		prev := uint32(0)
		for i := 0; i < int(min(v.N, uint32(MaxBackends))); i++ {
			t := v.T[i]
			e.Backends = append(e.Backends, Target{Addr: addrPort(t.To), ID: t.BackendId, Weight: t.Upto - prev})
			prev = t.Upto
		}
		out = append(out, e)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("steer: read routes: %w", err)
	}
	return out, nil
}

// CountKey names a (service, backend) pair of the connects counter;
// BackendID 0 counts connects to a service with no backend.
type CountKey struct{ ServiceID, BackendID uint32 }

// Counts returns the steered connects per service and backend since the
// maps were made (pinned maps keep counting across agents).
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
func CgroupV2Mount() (string, error) { return cgroupV2MountIn("/proc/self/mountinfo") }

// cgroupV2MountIn is CgroupV2Mount reading the mountinfo file at path.
func cgroupV2MountIn(path string) (string, error) {
	f, err := os.Open(path)
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
