package latbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mciv/mciv/internal/lab/lossnet"
)

const (
	// vethPrefix is the length of the veth pair's own subnet (two hosts).
	vethPrefix = "/30"
	// nftTable holds the loss rule inside the namespace.
	nftTable = "mciv_latbench"
)

// NetLab is the benchmark's network namespace: loopback and a veth pair
// to the host up, a TCP echo workload on its loopback, and the nftables
// rule that drops a share of the workload's packets on the input hook.
type NetLab struct {
	name string
	port int
	// The veth pair: the host's end and address, the namespace's end and
	// address. Names and subnet derive from the namespace's name, so that
	// two labs (the benchmark and a test) never touch each other's pair.
	vethHost, vethNS string
	hostAddr, nsAddr string

	stop context.CancelFunc
	wg   sync.WaitGroup
	sent atomic.Int64
	echo atomic.Int64
}

// NewNetLab creates the namespace name (replacing a leftover of an earlier
// run) with its veth pair, and starts the workload. Close removes it all.
func NewNetLab(ctx context.Context, name string) (*NetLab, error) {
	l := &NetLab{name: name}
	l.vethHost, l.vethNS, l.hostAddr, l.nsAddr = vethFor(name)
	if _, err := os.Stat(l.Path()); err == nil {
		_ = run(ctx, "ip", "netns", "delete", name)
	}
	if l.vethExists() { // a leftover of this lab's own pair
		_ = run(ctx, "ip", "link", "delete", l.vethHost)
	}
	if err := subnetFree(l.hostAddr + vethPrefix); err != nil {
		return nil, fmt.Errorf("latbench: network lab %s: %w", name, err)
	}
	steps := [][]string{
		{"ip", "netns", "add", name},
		{"ip", "-n", name, "link", "set", "lo", "up"},
		{"ip", "link", "add", l.vethHost, "type", "veth", "peer", "name", l.vethNS, "netns", name},
		{"ip", "addr", "add", l.hostAddr + vethPrefix, "dev", l.vethHost},
		{"ip", "link", "set", l.vethHost, "up"},
		{"ip", "-n", name, "addr", "add", l.nsAddr + vethPrefix, "dev", l.vethNS},
		{"ip", "-n", name, "link", "set", l.vethNS, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("latbench: network lab %s: %w", name, err)
		}
	}
	if err := l.startWorkload(); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("latbench: network lab %s: workload: %w", name, err)
	}
	return l, nil
}

// Name is the namespace's name as `ip netns` knows it.
func (l *NetLab) Name() string { return l.name }

// Path is the namespace's file, for collector.netns.
func (l *NetLab) Path() string { return filepath.Join("/run/netns", l.name) }

// NSAddr is the namespace's address on the veth pair, reachable from the
// host.
func (l *NetLab) NSAddr() string { return l.nsAddr }

// Port is the workload server's port on the namespace's 127.0.0.1.
func (l *NetLab) Port() int { return l.port }

// Traffic reports the bytes the workload's client sent and got back.
func (l *NetLab) Traffic() (sent, echoed int64) { return l.sent.Load(), l.echo.Load() }

// SetLoss drops percent of the packets to the workload's port on the
// namespace's input hook (the senders retransmit); 0 removes the rule.
func (l *NetLab) SetLoss(ctx context.Context, percent int) error {
	script := lossnet.ClearRuleset(nftTable)
	if percent > 0 {
		var err error
		script, err = lossnet.PortLoss{Table: nftTable, Port: l.port, Percent: percent}.Ruleset()
		if err != nil {
			return err
		}
	}
	if err := lossnet.Nft(ctx, l.name, script); err != nil {
		return fmt.Errorf("latbench: loss %d%%: %w", percent, err)
	}
	return nil
}

// Retransmits reads Tcp RetransSegs from the namespace's /proc/net/snmp:
// the counter node_exporter inside it reports as
// node_netstat_Tcp_RetransSegs.
func (l *NetLab) Retransmits(ctx context.Context) (int64, error) {
	out, err := l.Command(ctx, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0, fmt.Errorf("latbench: read %s's /proc/net/snmp: %w", l.name, err)
	}
	return parseRetransSegs(string(out))
}

// parseRetransSegs finds Tcp RetransSegs in the text of /proc/net/snmp (a
// "Tcp:" line of names followed by a "Tcp:" line of values).
func parseRetransSegs(snmp string) (int64, error) {
	var header []string
	for _, line := range strings.Split(snmp, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, name := range header {
			if name == "RetransSegs" && i < len(f) {
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("latbench: /proc/net/snmp: RetransSegs %q: %w", f[i], err)
				}
				return v, nil
			}
		}
		break
	}
	return 0, errors.New("latbench: /proc/net/snmp: no Tcp RetransSegs")
}

// Command returns a command that runs name inside the namespace.
func (l *NetLab) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.name, name}, args...)...)
}

// Close stops the workload and deletes the namespace (and with it the
// veth pair and the nftables table).
func (l *NetLab) Close() error {
	if l.stop != nil {
		l.stop()
		l.wg.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if _, err := os.Stat(l.Path()); err == nil {
		if err := run(ctx, "ip", "netns", "delete", l.name); err != nil {
			errs = append(errs, err)
		}
	}
	// Deleting the namespace deletes the pair, the host's end a moment
	// later: wait for it, and delete it only if it stays.
	for i := 0; i < 20 && l.vethExists(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if l.vethExists() {
		if err := run(ctx, "ip", "link", "delete", l.vethHost); err != nil && l.vethExists() {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (l *NetLab) vethExists() bool {
	_, err := net.InterfaceByName(l.vethHost)
	return err == nil
}

// vethFor derives the veth pair's names (at most 15 characters) and its
// /30 in 10.213.0.0/16 from the namespace's name.
func vethFor(name string) (hostEnd, nsEnd, hostIP, nsIP string) {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	base := fmt.Sprintf("mlb%06x", v&0xffffff)
	third, fourth := (v>>8)&0xff, v&0xfc
	return base + "h", base + "n", fmt.Sprintf("10.213.%d.%d", third, fourth+1), fmt.Sprintf("10.213.%d.%d", third, fourth+2)
}

// subnetFree fails if an interface of this namespace already has an
// address in cidr.
func subnetFree(cidr string) error {
	_, want, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && want.Contains(ipn.IP) {
			return fmt.Errorf("subnet %s is in use on this host (%s): another lab of the same name runs", want, ipn)
		}
	}
	return nil
}

// startWorkload opens an echo server and its client on the namespace's
// loopback and keeps them talking until Close.
func (l *NetLab) startWorkload() error {
	var ln net.Listener
	var client net.Conn
	err := inNetns(l.Path(), func() error {
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		if client, err = net.Dial("tcp4", ln.Addr().String()); err != nil {
			ln.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The connection waits in the listener's queue; Accept works from any
	// thread, the socket stays in the namespace it was made in.
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	server, err := ln.Accept()
	ln.Close()
	if err != nil {
		client.Close()
		return fmt.Errorf("accept: %w", err)
	}
	l.port = ln.Addr().(*net.TCPAddr).Port
	ctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	l.wg.Add(4)
	go func() {
		defer l.wg.Done()
		<-ctx.Done()
		client.Close()
		server.Close()
	}()
	go func() { defer l.wg.Done(); _, _ = io.Copy(server, server) }()
	go func() { defer l.wg.Done(); _, _ = io.Copy(countWriter{&l.echo}, client) }()
	go func() { defer l.wg.Done(); lossnet.Send(ctx, client, &l.sent) }()
	return nil
}

// inNetns runs fn on an OS thread switched into the namespace at path. If
// switching back fails, the thread stays locked and dies with its
// goroutine rather than serve others in the wrong namespace.
func inNetns(path string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- errors.Join(fnErr, fmt.Errorf("setns back: %w", err))
			return
		}
		runtime.UnlockOSThread()
		done <- fnErr
	}()
	return <-done
}

// run runs a command, returning its output in the error if it fails.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }
