// Package fleetlab runs a NATS cluster of real nats-server child
// processes on loopback for tests: SIGKILL of a node shows the real raft
// election gap, which an in-process Shutdown (it steps leaders down
// first) hides. The nats-server binary is built from the module version
// mciv requires and cached under os.TempDir.
package fleetlab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServerModule is the Go module of nats-server.
const ServerModule = "github.com/nats-io/nats-server/v2"

var buildMu sync.Mutex

// serverVersion is the nats-server version this test binary is built with.
func serverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == ServerModule {
				return d.Version
			}
		}
	}
	return "v2.15.2"
}

// Binary returns the path of a nats-server binary of the version mciv
// requires, building it (go build, module proxy) once per version.
func Binary(ctx context.Context) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	v := serverVersion()
	path := filepath.Join(os.TempDir(), "mciv-nats-server-"+v)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	goTool := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	tmp := path + fmt.Sprintf(".%d.tmp", os.Getpid())
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", tmp, ServerModule+"@"+v)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	cmd.Dir = os.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		// `go build pkg@version` needs module mode outside a module;
		// inside mciv's module the required version builds directly.
		cmd = exec.CommandContext(ctx, goTool, "build", "-o", tmp, ServerModule)
		if out2, err2 := cmd.CombinedOutput(); err2 != nil {
			return "", fmt.Errorf("building nats-server %s: %v\n%s\n%s", v, err, out, out2)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("nats-server binary: %w", err)
	}
	return path, nil
}

// Node is one nats-server of a Cluster.
type Node struct {
	Name    string
	Port    int
	cluster int
	dir     string
	conf    string
	uid     int // 0: runs as the test's user
	cmd     *exec.Cmd
	done    chan struct{}
}

// URL is the node's client URL.
func (n *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// Cluster is a NATS cluster of child processes.
type Cluster struct {
	t     testing.TB
	bin   string
	root  string
	mu    sync.Mutex
	Nodes []*Node
}

// nodeUID is the uid of node 0 when the test runs as root; node i runs as
// nodeUID+i.
const nodeUID = 64000

// freePorts picks n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Start builds nats-server if needed and starts a cluster of n nodes
// with JetStream, waiting until each accepts clients. The nodes are
// killed when the test ends.
func Start(ctx context.Context, t testing.TB, n int) *Cluster {
	t.Helper()
	bin, err := Binary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, bin: bin}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	// The nodes run as uids of their own when the test is root, so that
	// Cut can drop one node's packets by owner (nftables meta skuid).
	root, err := os.MkdirTemp("", "mciv-fleetlab-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	c.root = root
	for i := range n {
		nd := &Node{Name: fmt.Sprintf("n%d", i), Port: ports[i], cluster: ports[n+i], dir: filepath.Join(root, fmt.Sprintf("n%d", i))}
		nd.conf = filepath.Join(root, nd.Name+".conf")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 1GB }
cluster { name: mciv-lab, listen: 127.0.0.1:%d, routes: [%s] }
`, nd.Name, nd.Port, nd.dir, nd.cluster, strings.Join(routes, ", "))
		if err := os.WriteFile(nd.conf, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			nd.uid = nodeUID + i
			if err := os.Mkdir(nd.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(nd.dir, nd.uid, nd.uid); err != nil {
				t.Fatal(err)
			}
		}
		c.Nodes = append(c.Nodes, nd)
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Kill(i)
			_ = c.Heal(context.Background(), i)
			if t.Failed() {
				SaveLog(t, c.logPath(i))
			}
		}
	})
	for i := range c.Nodes {
		if err := c.start(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.Nodes {
		if err := c.waitReady(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *Cluster) start(i int) error {
	nd := c.Nodes[i]
	cmd := exec.Command(c.bin, "-c", nd.conf)
	log, err := os.OpenFile(c.logPath(i), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if nd.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(nd.uid), Gid: uint32(nd.uid)}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", nd.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = log.Close(); close(done) }()
	c.mu.Lock()
	nd.cmd, nd.done = cmd, done
	c.mu.Unlock()
	return nil
}

// logPath is the log file of node i (appended to by every start).
func (c *Cluster) logPath(i int) string {
	return filepath.Join(c.root, c.Nodes[i].Name+".log")
}

// waitReady waits until node i accepts TCP connections.
func (c *Cluster) waitReady(ctx context.Context, i int) error {
	nd := c.Nodes[i]
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", nd.Port), time.Second)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", nd.Name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URLs is the comma-separated list of every node's client URL.
func (c *Cluster) URLs() string {
	var us []string
	for _, n := range c.Nodes {
		us = append(us, n.URL())
	}
	return strings.Join(us, ",")
}

// Index returns the index of the node named name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// Kill sends SIGKILL to node i and waits until it is gone.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	nd := c.Nodes[i]
	cmd, done := nd.cmd, nd.done
	nd.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts node i again on its data directory.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.start(i); err != nil {
		return err
	}
	return c.waitReady(ctx, i)
}
