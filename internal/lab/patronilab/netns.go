package patronilab

// Network-namespace mode (Options.NetNS): every member runs in a network
// namespace of its own, joined to the host by a veth pair on one bridge.
//
// Names. A lab draws an id "mpl" + 6 hex digits; its namespaces are
// <id>-pg<i>, its bridge <id>-br, the host ends of its veth pairs <id>-h<i>
// and their namespace ends <id>-n<i> (all at most 15 characters).
//
// Leftovers. While it lives, a lab holds an exclusive flock on
// /run/mciv-patronilab/<id>.lock (released by the kernel when the process
// dies). Start, in NetNS mode, removes every namespace and link whose name
// carries the lab prefix and whose lock nobody holds: processes still
// inside such a namespace are killed, then the namespace, the veths and
// the bridge are deleted. Labs of other live processes are left alone.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mciv/mciv/internal/lab/lossnet"
)

const (
	// labPrefix starts the id of every NetNS lab, hence every name it makes.
	labPrefix = "mpl"
	// netnsDir is where `ip netns add` bind-mounts named namespaces.
	netnsDir = "/var/run/netns"
	// lockDir holds the labs' lock files.
	lockDir = "/run/mciv-patronilab"
	// faultTable is the nftables table Degrade installs in a namespace.
	faultTable = "mciv_fault"
	// maxNetNSMembers bounds Members in NetNS mode (.10 to .210 of a /24).
	maxNetNSMembers = 200
	// netTimeout bounds each cleanup step that has no caller's context.
	netTimeout = 10 * time.Second
)

// labNet is the network of a NetNS lab.
type labNet struct {
	id      string
	subnet  *net.IPNet // a /24 in 10.0.0.0/8
	members int
	lock    *os.File // flocked while the lab lives
	log     *slog.Logger
}

func (n *labNet) bridge() string        { return n.id + "-br" }
func (n *labNet) nsName(i int) string   { return fmt.Sprintf("%s-pg%d", n.id, i) }
func (n *labNet) nsPath(i int) string   { return filepath.Join(netnsDir, n.nsName(i)) }
func (n *labNet) hostVeth(i int) string { return fmt.Sprintf("%s-h%d", n.id, i) }
func (n *labNet) peerVeth(i int) string { return fmt.Sprintf("%s-n%d", n.id, i) }

// gateway is the bridge's address, .1.
func (n *labNet) gateway() net.IP { return hostIP(n.subnet, 1) }

// memberIP is member i's address, .(10+i).
func (n *labNet) memberIP(i int) net.IP { return hostIP(n.subnet, 10+i) }

func (n *labNet) prefixLen() string {
	ones, _ := n.subnet.Mask.Size()
	return strconv.Itoa(ones)
}

// hostIP is the address host of the IPv4 network subnet.
func hostIP(subnet *net.IPNet, host int) net.IP {
	ip := append(net.IP(nil), subnet.IP.To4()...)
	ip[3] += byte(host)
	return ip
}

// labID returns the lab id that name starts with ("mpl" + 6 lower-case hex
// digits + "-"), if it does.
func labID(name string) (string, bool) {
	const n = len(labPrefix) + 6
	if len(name) <= n || !strings.HasPrefix(name, labPrefix) || name[n] != '-' {
		return "", false
	}
	for _, r := range name[len(labPrefix):n] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return "", false
		}
	}
	return name[:n], true
}

// pickSubnet returns the first /24 of 10.0.0.0/8, counting from the
// start-th (mod 65536), that overlaps none of used.
func pickSubnet(used []*net.IPNet, start int) (*net.IPNet, error) {
	const count = 1 << 16
	mask := net.CIDRMask(24, 32)
	for k := range count {
		idx := ((start+k)%count + count) % count
		cand := &net.IPNet{IP: net.IPv4(10, byte(idx>>8), byte(idx), 0).To4(), Mask: mask}
		free := true
		for _, u := range used {
			if u.IP.To4() == nil {
				continue
			}
			if cand.Contains(u.IP) || u.Contains(cand.IP) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return nil, errors.New("no free /24 in 10.0.0.0/8")
}

// usedIPv4Nets lists the IPv4 networks of this namespace's interfaces
// (what `ip -o addr` shows).
func usedIPv4Nets() ([]*net.IPNet, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("interface addresses: %w", err)
	}
	var out []*net.IPNet
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			out = append(out, ipn)
		}
	}
	return out, nil
}

// newLabNet draws an id, takes its lock, removes leftovers of dead labs
// and picks a free subnet. It makes no network object yet (see create).
func newLabNet(ctx context.Context, members int, log *slog.Logger) (*labNet, error) {
	if members > maxNetNSMembers {
		return nil, fmt.Errorf("patronilab: netns mode: %d members, at most %d", members, maxNetNSMembers)
	}
	for _, cmd := range []string{"ip", "nft", "nsenter", "setpriv"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return nil, fmt.Errorf("patronilab: netns mode: %w (apt-get install iproute2 nftables util-linux)", err)
		}
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("patronilab: lock directory: %w", err)
	}
	n := &labNet{members: members, log: log}
	var seed [3]byte
	for attempt := 0; n.lock == nil; attempt++ {
		_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails on Linux
		id := labPrefix + hex.EncodeToString(seed[:])
		f, locked, err := tryLock(filepath.Join(lockDir, id+".lock"))
		if err != nil {
			return nil, fmt.Errorf("patronilab: lab lock: %w", err)
		}
		if !locked && attempt < 10 {
			continue // another live lab drew the same id
		}
		if !locked {
			return nil, errors.New("patronilab: lab lock: every id drawn is in use")
		}
		n.id, n.lock = id, f
	}
	if err := cleanLeftovers(ctx, n.id, log); err != nil {
		n.release()
		return nil, err
	}
	used, err := usedIPv4Nets()
	if err == nil {
		n.subnet, err = pickSubnet(used, int(seed[0])<<8|int(seed[1]))
	}
	if err != nil {
		n.release()
		return nil, fmt.Errorf("patronilab: netns mode: %w", err)
	}
	return n, nil
}

// tryLock opens (creating) path and takes an exclusive flock without
// waiting. The file stays open only if locked.
func tryLock(path string) (f *os.File, locked bool, err error) {
	f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("flock %s: %w", path, err)
	}
	return f, true, nil
}

// release drops the lab's lock and its file.
func (n *labNet) release() {
	if n.lock == nil {
		return
	}
	_ = os.Remove(n.lock.Name())
	_ = syscall.Flock(int(n.lock.Fd()), syscall.LOCK_UN)
	n.lock.Close()
	n.lock = nil
}

// create makes the bridge, the namespaces and the veth pairs, and
// addresses and routes. What it made is undone by teardown, even if it
// fails halfway.
func (n *labNet) create(ctx context.Context) error {
	plen := n.prefixLen()
	br := n.bridge()
	// Bridged frames skip the host's iptables/nftables (br_netfilter), on
	// this bridge only: a FORWARD policy cannot break the lab, and no
	// global setting changes.
	steps := [][]string{
		{"link", "add", br, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0"},
		{"addr", "add", n.gateway().String() + "/" + plen, "dev", br},
		{"link", "set", br, "up"},
	}
	for i := range n.members {
		ns, h, p := n.nsName(i), n.hostVeth(i), n.peerVeth(i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"link", "add", h, "type", "veth", "peer", "name", p, "netns", ns},
			[]string{"link", "set", h, "master", br},
			[]string{"link", "set", h, "up"},
			[]string{"-n", ns, "addr", "add", n.memberIP(i).String() + "/" + plen, "dev", p},
			[]string{"-n", ns, "link", "set", p, "up"},
			[]string{"-n", ns, "route", "add", "default", "via", n.gateway().String()},
		)
	}
	for _, args := range steps {
		if err := runCmd(ctx, nil, "ip", args...); err != nil {
			return fmt.Errorf("patronilab: netns mode: %w", err)
		}
	}
	n.log.Info("network up", "id", n.id, "bridge", br, "subnet", n.subnet.String())
	return nil
}

// teardown removes everything create made (or any part of it): leftover
// processes in the namespaces, nft tables, veths, namespaces, bridge, and
// releases the lock.
func (n *labNet) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
	defer cancel()
	var errs []error
	for i := range n.members {
		if _, err := os.Stat(n.nsPath(i)); err == nil {
			if err := killInNetns(ctx, n.nsPath(i)); err != nil {
				errs = append(errs, err)
			}
			if err := lossnet.Nft(ctx, n.nsName(i), lossnet.ClearRuleset(faultTable)); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, delLink(ctx, n.hostVeth(i)), delNetns(ctx, n.nsName(i)))
	}
	errs = append(errs, delLink(ctx, n.bridge()))
	n.release()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("patronilab: remove network %s: %w", n.id, err)
	}
	n.log.Info("network removed", "id", n.id)
	return nil
}

// delLink deletes a link if it exists (deleting one end of a veth pair
// deletes both).
func delLink(ctx context.Context, name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil
	}
	return runCmd(ctx, nil, "ip", "link", "delete", name)
}

// delNetns deletes a named namespace if it exists.
func delNetns(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); err != nil {
		return nil
	}
	return runCmd(ctx, nil, "ip", "netns", "delete", name)
}

// pidsInNetns lists the processes whose network namespace is the one
// bind-mounted at path.
func pidsInNetns(path string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(path, &want); err != nil {
		return nil, fmt.Errorf("namespace %s: %w", path, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			continue // gone, a zombie, or a kernel thread we cannot read
		}
		if st.Ino == want.Ino && st.Dev == want.Dev {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killInNetns SIGKILLs every process inside the namespace at path and
// waits until none is left or ctx ends.
func killInNetns(ctx context.Context, path string) error {
	for {
		pids, err := pidsInNetns(path)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v still in %s: %w", pids, path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cleanLeftovers removes the namespaces and links of labs whose owner is
// gone (nobody holds their lock), except own's.
func cleanLeftovers(ctx context.Context, own string, log *slog.Logger) error {
	namespaces := map[string][]string{}
	links := map[string][]string{}
	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("patronilab: list namespaces: %w", err)
	}
	for _, e := range ents {
		if id, ok := labID(e.Name()); ok && id != own {
			namespaces[id] = append(namespaces[id], e.Name())
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("patronilab: list links: %w", err)
	}
	for _, ifc := range ifs {
		if id, ok := labID(ifc.Name); ok && id != own {
			links[id] = append(links[id], ifc.Name)
		}
	}
	ids := map[string]bool{}
	for id := range namespaces {
		ids[id] = true
	}
	for id := range links {
		ids[id] = true
	}
	locks, _ := filepath.Glob(filepath.Join(lockDir, labPrefix+"*.lock"))
	for _, l := range locks {
		if id, ok := labID(strings.TrimSuffix(filepath.Base(l), ".lock") + "-"); ok && id != own {
			ids[id] = true
		}
	}
	var errs []error
	for id := range ids {
		f, locked, err := tryLock(filepath.Join(lockDir, id+".lock"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !locked {
			continue // a live lab
		}
		log.Info("removing leftovers of a dead lab", "id", id, "namespaces", namespaces[id], "links", links[id])
		for _, ns := range namespaces[id] {
			if err := killInNetns(ctx, filepath.Join(netnsDir, ns)); err != nil {
				errs = append(errs, err)
			}
			errs = append(errs, delNetns(ctx, ns))
		}
		for _, l := range links[id] {
			errs = append(errs, delLink(ctx, l))
		}
		_ = os.Remove(f.Name())
		f.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("patronilab: remove leftovers of dead labs: %w", err)
	}
	return nil
}

// runCmd runs a command and returns an error with its output if it fails.
func runCmd(ctx context.Context, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// PGAddr returns member's PostgreSQL address, "addr:port" ("" if unknown).
func (c *Cluster) PGAddr(member string) string {
	m, ok := c.member(member)
	if !ok {
		return ""
	}
	return net.JoinHostPort(m.addr(), strconv.Itoa(m.PGPort))
}

// NetNSPath returns the path of member's network namespace
// (/var/run/netns/NAME), or "" in loopback mode or if unknown.
func (c *Cluster) NetNSPath(member string) string {
	m, _ := c.member(member)
	return m.NetNS
}

// Subnet returns the lab's network in NetNS mode (a /24 of 10.0.0.0/8
// whose .1 is the host's bridge), or nil in loopback mode.
func (c *Cluster) Subnet() *net.IPNet {
	if c.net == nil {
		return nil
	}
	return &net.IPNet{IP: append(net.IP(nil), c.net.subnet.IP...), Mask: append(net.IPMask(nil), c.net.subnet.Mask...)}
}

// Command returns a command that runs name with args inside member's
// network namespace (through `ip netns exec`, as root); in loopback mode,
// or for an unknown member, it is just the command.
func (c *Cluster) Command(ctx context.Context, member, name string, args ...string) *exec.Cmd {
	m, _ := c.member(member)
	if m.NetNS == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", filepath.Base(m.NetNS), name}, args...)...)
}

// Degrade drops percent (0 to 100; 0 is Heal) of the TCP packets arriving
// at member's PostgreSQL port from outside its namespace, and of those its
// PostgreSQL sends out of the namespace, with an nftables
// table (inet mciv_fault) in the member's namespace: replication and
// clients lose packets and retransmit, while Patroni's own connections over
// the namespace's loopback are spared. Calling it again replaces the rate.
// It needs NetNS mode.
func (c *Cluster) Degrade(ctx context.Context, member string, percent int) error {
	m, ns, err := c.faultTarget(member, "degrade")
	if err != nil {
		return err
	}
	if percent == 0 {
		return c.Heal(ctx, member)
	}
	script, err := lossnet.PortLoss{Table: faultTable, Port: m.PGPort, Percent: percent, SkipLoopback: true, BothWays: true}.Ruleset()
	if err == nil {
		err = lossnet.Nft(ctx, ns, script)
	}
	if err != nil {
		return fmt.Errorf("patronilab: degrade %s by %d%%: %w", member, percent, err)
	}
	c.log.Info("member degraded", "member", member, "percent", percent, "port", m.PGPort)
	return nil
}

// Heal removes Degrade's rule from member's namespace; it is a no-op
// without one. It needs NetNS mode.
func (c *Cluster) Heal(ctx context.Context, member string) error {
	_, ns, err := c.faultTarget(member, "heal")
	if err != nil {
		return err
	}
	if err := lossnet.Nft(ctx, ns, lossnet.ClearRuleset(faultTable)); err != nil {
		return fmt.Errorf("patronilab: heal %s: %w", member, err)
	}
	c.log.Info("member healed", "member", member)
	return nil
}

// faultTarget returns member and its namespace's name, or why a fault
// cannot be injected there.
func (c *Cluster) faultTarget(member, what string) (Member, string, error) {
	m, ok := c.member(member)
	if !ok {
		return Member{}, "", fmt.Errorf("patronilab: %s: no member %q", what, member)
	}
	if m.NetNS == "" {
		return Member{}, "", fmt.Errorf("patronilab: %s %s: network faults need a lab started with Options.NetNS (this one runs on 127.0.0.1)", what, member)
	}
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done {
		return Member{}, "", fmt.Errorf("patronilab: %s %s: cluster stopped", what, member)
	}
	return m, filepath.Base(m.NetNS), nil
}
