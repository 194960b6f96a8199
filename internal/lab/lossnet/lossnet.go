// Package lossnet is a small network lab for demos and tests: a private
// network namespace whose loopback carries a steady TCP stream, and an
// nftables rule that drops a share of that stream's packets so that the
// kernel really retransmits. Traffic never leaves the namespace.
//
// It needs root (network namespaces, setns, nftables) and the ip and nft
// commands.
package lossnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// netnsDir is where `ip netns` keeps its named namespaces.
	netnsDir = "/run/netns"
	// nftTable is the nftables table the lab owns inside its namespace.
	nftTable = "mciv_lossnet"
	// MaxWorkload bounds how long a workload runs if nobody stops it.
	MaxWorkload = 10 * time.Minute
	// chunkSize and chunkEvery shape the workload: 1 KiB every 10 ms.
	chunkSize  = 1024
	chunkEvery = 10 * time.Millisecond
	// cleanupTimeout bounds the commands Close runs.
	cleanupTimeout = 10 * time.Second
)

var (
	validName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	validTable = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)
)

// Lab is one network namespace with an optional TCP workload inside.
// Its methods are safe for concurrent use.
type Lab struct {
	name string

	mu     sync.Mutex
	closed bool
	port   int                // the workload server's port, 0 before StartWorkload
	stop   context.CancelFunc // stops the workload
	wg     sync.WaitGroup     // the workload's goroutines

	sent, echoed atomic.Int64 // bytes the client wrote and read back
}

// New creates the network namespace name with its loopback up. A namespace
// of that name left over from an earlier run is deleted first.
func New(ctx context.Context, name string) (*Lab, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("lossnet: namespace name %q: want letters, digits, '_', '.', '-' (at most 63)", name)
	}
	l := &Lab{name: name}
	if l.exists() {
		if err := run(ctx, nil, "ip", "netns", "delete", name); err != nil {
			return nil, fmt.Errorf("lossnet: remove leftover namespace: %w", err)
		}
	}
	if err := run(ctx, nil, "ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("lossnet: create namespace: %w", err)
	}
	if err := run(ctx, nil, "ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		_ = run(context.WithoutCancel(ctx), nil, "ip", "netns", "delete", name)
		return nil, fmt.Errorf("lossnet: loopback up in %s: %w", name, err)
	}
	return l, nil
}

// Name is the network namespace's name (as `ip netns` knows it).
func (l *Lab) Name() string { return l.name }

// Port is the workload server's port on 127.0.0.1, or 0 before
// StartWorkload.
func (l *Lab) Port() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.port
}

// Command returns a command that runs name with args inside the namespace
// (through `ip netns exec`), e.g. to start a database there.
func (l *Lab) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.name, name}, args...)...)
}

// StartWorkload starts a TCP echo server and a client inside the namespace,
// both on 127.0.0.1, and returns the server's port. The client sends 1 KiB
// every 10 ms and reads the echo back, until ctx ends, Close is called or
// MaxWorkload has passed. A lab runs one workload.
func (l *Lab) StartWorkload(ctx context.Context) (port int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, errors.New("lossnet: lab is closed")
	}
	if l.port != 0 {
		return 0, fmt.Errorf("lossnet: a workload already runs on port %d", l.port)
	}

	var ln net.Listener
	var client net.Conn
	err = l.inNetns(func() error {
		var err error
		ln, err = net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		var d net.Dialer
		client, err = d.DialContext(ctx, "tcp4", ln.Addr().String())
		if err != nil {
			ln.Close()
			return fmt.Errorf("dial: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("lossnet: workload in %s: %w", l.name, err)
	}
	// The client's connection is in the listener's queue already; accept
	// works from any namespace, the socket stays where it was made.
	if tl, ok := ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(5 * time.Second))
	}
	server, err := ln.Accept()
	ln.Close()
	if err != nil {
		client.Close()
		return 0, fmt.Errorf("lossnet: workload in %s: accept: %w", l.name, err)
	}
	port = ln.Addr().(*net.TCPAddr).Port

	wctx, stop := context.WithTimeout(ctx, MaxWorkload)
	l.port, l.stop = port, stop
	l.wg.Add(4)
	go func() { // ends the workload: closing the sockets ends the others
		defer l.wg.Done()
		<-wctx.Done()
		client.Close()
		server.Close()
	}()
	go func() { // server: echo everything back
		defer l.wg.Done()
		_, _ = io.Copy(server, server)
	}()
	go func() { // client: read the echo
		defer l.wg.Done()
		_, _ = io.Copy(counter{&l.echoed}, client)
	}()
	go func() { // client: send
		defer l.wg.Done()
		l.send(wctx, client)
	}()
	return port, nil
}

// send writes the workload's chunks until ctx ends or a write fails.
func (l *Lab) send(ctx context.Context, c net.Conn) { Send(ctx, c, &l.sent) }

// Send writes the lab's workload to c, 1 KiB every 10 ms, adding the bytes
// written to sent, until ctx ends or a write fails: a steady stream whose
// retransmits under loss are easy to see.
func Send(ctx context.Context, c net.Conn, sent *atomic.Int64) {
	chunk := bytes.Repeat([]byte("mciv"), chunkSize/4)
	t := time.NewTicker(chunkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := c.Write(chunk)
		sent.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// Traffic reports how many bytes the workload's client has sent and how
// many came back through the echo server.
func (l *Lab) Traffic() (sent, echoed int64) {
	return l.sent.Load(), l.echoed.Load()
}

// SetLoss drops percent (0 to 100) of the packets sent to the workload's
// server port, on the namespace's input hook, so the senders retransmit.
// A drop on the output hook would fail the send locally and not count as a
// retransmit. Calling it again replaces the rate; 0 is ClearLoss.
func (l *Lab) SetLoss(ctx context.Context, percent int) error {
	port := l.Port()
	if port == 0 {
		return errors.New("lossnet: no workload: call StartWorkload first (or SetPortLoss)")
	}
	return l.SetPortLoss(ctx, port, percent)
}

// SetPortLoss is SetLoss for any TCP destination port in the namespace.
func (l *Lab) SetPortLoss(ctx context.Context, port, percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("lossnet: loss %d%%: want 0 to 100", percent)
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("lossnet: port %d out of range", port)
	}
	if percent == 0 {
		return l.ClearLoss(ctx)
	}
	if err := l.nft(ctx, lossRuleset(port, percent)); err != nil {
		return fmt.Errorf("lossnet: set %d%% loss on port %d: %w", percent, port, err)
	}
	return nil
}

// ClearLoss removes the loss rule. It is a no-op without one.
func (l *Lab) ClearLoss(ctx context.Context) error {
	if err := l.nft(ctx, clearRuleset()); err != nil {
		return fmt.Errorf("lossnet: clear loss: %w", err)
	}
	return nil
}

// lossRuleset replaces the lab's table in one nft transaction ("add" then
// "delete" makes the delete succeed whether or not the table existed).
func lossRuleset(port, percent int) string {
	return PortLoss{Table: nftTable, Port: port, Percent: percent}.ruleset()
}

func clearRuleset() string { return ClearRuleset(nftTable) }

// PortLoss is an nftables rule that drops a share of the TCP packets
// arriving for one destination port, on the input hook (so that the
// senders really retransmit), in a table of its own.
type PortLoss struct {
	// Table is the inet table that holds the rule ("" is the lab's own
	// table, mciv_lossnet). Ruleset replaces it whole.
	Table string
	// Port is the TCP destination port, 1 to 65535.
	Port int
	// Percent is the share of packets dropped, 1 to 100.
	Percent int
	// SkipLoopback leaves packets arriving on lo alone, so that local
	// clients (127.0.0.1 inside the namespace) keep reaching the port and
	// only traffic from other hosts or namespaces is lost.
	SkipLoopback bool
	// BothWays also drops the share of packets leaving from Port (the
	// server's answers and data), not only those arriving to it.
	BothWays bool
}

// Ruleset returns the nft script that installs p, replacing its table in
// one transaction, for `nft -f -` (see Nft).
func (p PortLoss) Ruleset() (string, error) {
	if p.Percent < 1 || p.Percent > 100 {
		return "", fmt.Errorf("lossnet: loss %d%%: want 1 to 100", p.Percent)
	}
	if p.Port <= 0 || p.Port > 65535 {
		return "", fmt.Errorf("lossnet: port %d out of range", p.Port)
	}
	if p.Table != "" && !validTable.MatchString(p.Table) {
		return "", fmt.Errorf("lossnet: nftables table name %q: want letters, digits, '_' (at most 63)", p.Table)
	}
	return p.ruleset(), nil
}

func (p PortLoss) ruleset() string {
	table := p.Table
	if table == "" {
		table = nftTable
	}
	rule := func(iface, port string) string {
		r := fmt.Sprintf("tcp %s %d numgen random mod 100 < %d drop", port, p.Port, p.Percent)
		if p.Percent >= 100 {
			// nft refuses "< 100" (numgen mod 100 is at most 99): drop all.
			r = fmt.Sprintf("tcp %s %d drop", port, p.Port)
		}
		if p.SkipLoopback {
			r = iface + ` != "lo" ` + r
		}
		return r
	}
	out := ""
	if p.BothWays {
		out = fmt.Sprintf(`
	chain output {
		type filter hook output priority filter; policy accept;
		%s
	}`, rule("oifname", "sport"))
	}
	return ClearRuleset(table) + fmt.Sprintf(`table inet %s {
	chain input {
		type filter hook input priority filter; policy accept;
		%s
	}%s
}
`, table, rule("iifname", "dport"), out)
}

// ClearRuleset returns the nft script that deletes the inet table, whether
// or not it exists ("add" then "delete" in one transaction).
func ClearRuleset(table string) string {
	return fmt.Sprintf("add table inet %[1]s\ndelete table inet %[1]s\n", table)
}

// Nft runs `nft -f -` with script inside the named network namespace (as
// `ip netns` knows it), through `ip netns exec`. It needs root.
func Nft(ctx context.Context, netns, script string) error {
	if !validName.MatchString(netns) {
		return fmt.Errorf("lossnet: namespace name %q: want letters, digits, '_', '.', '-' (at most 63)", netns)
	}
	if err := run(ctx, strings.NewReader(script), "ip", "netns", "exec", netns, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("lossnet: nft in %s: %w", netns, err)
	}
	return nil
}

func (l *Lab) nft(ctx context.Context, script string) error {
	if l.isClosed() {
		return errors.New("lab is closed")
	}
	return run(ctx, strings.NewReader(script), "ip", "netns", "exec", l.name, "nft", "-f", "-")
}

// Close stops the workload and deletes the namespace with everything in
// it. Calling it again does nothing.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	stop := l.stop
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
	l.wg.Wait()
	if !l.exists() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := run(ctx, nil, "ip", "netns", "delete", l.name); err != nil {
		return fmt.Errorf("lossnet: delete namespace: %w", err)
	}
	return nil
}

func (l *Lab) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *Lab) exists() bool {
	_, err := os.Stat(filepath.Join(netnsDir, l.name))
	return err == nil
}

// inNetns runs fn on an OS thread switched into the lab's namespace, so
// the sockets fn creates belong to the namespace. It runs on its own
// goroutine: if switching back fails, that thread stays locked and the Go
// runtime discards it when the goroutine ends, instead of another goroutine
// running in the wrong namespace.
func (l *Lab) inNetns(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join(netnsDir, l.name))
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("namespace %s: %w", l.name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns %s: %w", l.name, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- errors.Join(fnErr, fmt.Errorf("setns back: %w", err))
			return // thread stays locked: it dies with this goroutine
		}
		runtime.UnlockOSThread()
		done <- fnErr
	}()
	return <-done
}

// run runs a command and returns an error with its output if it fails.
func run(ctx context.Context, stdin io.Reader, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// counter is an io.Writer that counts and discards.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}
