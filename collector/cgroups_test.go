package collector

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

// TestCgroupNames finds the hierarchies in a mountinfo file and names ids
// by walking a directory tree, walking again for an unknown id only after
// cgroupRewalk.
func TestCgroupNames(t *testing.T) {
	v2, blkio := t.TempDir(), t.TempDir()
	mountinfo := filepath.Join(t.TempDir(), "mountinfo")
	lines := []string{
		"22 1 0:21 / /proc rw,nosuid - proc proc rw",
		"30 25 0:26 / " + blkio + " rw,relatime shared:9 - cgroup cgroup rw,blkio",
		"31 25 0:27 / " + v2 + " rw,relatime shared:10 - cgroup2 cgroup2 rw",
		"40 25 0:28 /sub /elsewhere rw - cgroup2 cgroup2 rw", // a bind mount of a subtree: not a root
	}
	if err := os.WriteFile(mountinfo, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCgroupNames(mountinfo)
	if c.roots[cgroupSockets] != v2 || c.roots[cgroupIO] != blkio {
		t.Fatalf("roots %q, want sockets %q and io %q (v2 has no io controller)", c.roots, v2, blkio)
	}
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	svc := filepath.Join(v2, "system.slice", "postgresql.service")
	if err := os.MkdirAll(svc, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := c.name(cgroupSockets, inode(t, svc)); got != "/system.slice/postgresql.service" {
		t.Errorf("service cgroup named %q", got)
	}
	if got := c.name(cgroupSockets, inode(t, v2)); got != "" {
		t.Errorf("root named %q, want none", got)
	}
	if got := c.name(cgroupSockets, 0); got != "" {
		t.Errorf("id 0 named %q", got)
	}
	late := filepath.Join(v2, "late")
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := c.name(cgroupSockets, inode(t, late)); got != "" {
		t.Errorf("a cgroup made after the walk was found %q before cgroupRewalk", got)
	}
	now = now.Add(cgroupRewalk)
	if got := c.name(cgroupSockets, inode(t, late)); got != "/late" {
		t.Errorf("after cgroupRewalk: %q, want /late", got)
	}
	io := filepath.Join(blkio, "docker", "abc")
	if err := os.MkdirAll(io, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := c.name(cgroupIO, inode(t, io)); got != "/docker/abc" {
		t.Errorf("blkio cgroup named %q", got)
	}

	// With the io controller on cgroup v2, I/O is named from v2.
	if err := os.WriteFile(filepath.Join(v2, "cgroup.controllers"), []byte("cpu io memory pids\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := newCgroupNames(mountinfo); c.roots[cgroupIO] != v2 {
		t.Errorf("io root %q, want cgroup v2's %q", c.roots[cgroupIO], v2)
	}
	var none *cgroupNames
	if got := none.name(cgroupIO, 5); got != "" {
		t.Errorf("nil names: %q", got)
	}
}

// testCgroup makes a cgroup for this test under the root of hierarchy h
// and returns its directory and its name (path from the root).
func testCgroup(t testing.TB, root string) (string, string) {
	t.Helper()
	name := fmt.Sprintf("/mciv-test-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("make cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Its processes have exited; the kernel may take a moment to
		// let the cgroup go.
		for range 50 {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("cgroup %s left behind", dir)
	})
	return dir, name
}

var cgroupSeq atomic.Int64

// runInCgroups runs script with bash once the process is in each of the
// cgroup directories given.
func runInCgroups(t *testing.T, script string, dirs ...string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", "read -r _ && "+script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("move the child into %s: %v", d, err)
		}
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out.String())
	}
}

// TestCgroupLabelsEndToEnd runs a TCP client and direct disk writes in a
// cgroup of their own and expects that cgroup's name on their samples:
// the socket's cgroup on tcp_connect_seconds and tcp_rtt_seconds, the
// cgroup the I/O is charged to on disk_io_seconds.
func TestCgroupLabelsEndToEnd(t *testing.T) {
	requireKernel(t)
	testenv.RequireCommand(t, "bash", "dd")
	testenv.ExclusiveKernel(t)
	names := newCgroupNames("/proc/self/mountinfo")
	sockRoot, ioRoot := names.roots[cgroupSockets], names.roots[cgroupIO]
	if sockRoot == "" {
		testenv.Missing(t, "no cgroup v2 mount")
	}
	if ioRoot == "" {
		testenv.Missing(t, "no io controller (cgroup v2 io or v1 blkio) mounted")
	}
	if ioRoot == sockRoot {
		// The io controller must be on for the test's cgroup, or its
		// I/O is charged to the root.
		if err := os.WriteFile(filepath.Join(sockRoot, "cgroup.subtree_control"), []byte("+io"), 0o644); err != nil {
			t.Fatalf("enable the io controller: %v", err)
		}
	}
	dir := blockDeviceDir(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	r := runKernelCollector(t, Config{}, only("tcp", "disk"))
	r.requireAttached(t, "inet_sock_set_state", "tcp_probe", "block_rq_issue", "block_rq_complete")
	sockDir, sockName := testCgroup(t, sockRoot)
	dirs, ioName := []string{sockDir}, sockName
	if ioRoot != sockRoot {
		var ioDir string
		ioDir, ioName = testCgroup(t, ioRoot)
		dirs = append(dirs, ioDir)
	}
	closed := freePort(t)
	runInCgroups(t, fmt.Sprintf(`exec 3<>/dev/tcp/127.0.0.1/%d
for i in $(seq 20); do echo ping >&3; read -r line <&3; done
exec 3>&-
(exec 4<>/dev/tcp/127.0.0.1/%d) 2>/dev/null
dd if=/dev/zero of=%s bs=4096 count=32 oflag=direct,dsync status=none`, port, closed, filepath.Join(dir, "data")), dirs...)

	peer := fmt.Sprintf("127.0.0.1:%d", port)
	closedPeer := fmt.Sprintf("127.0.0.1:%d", closed)
	want := []string{
		"tcp_connect_seconds{cgroup=" + sockName + ",peer=" + peer + ",}",
		"tcp_connect_errors_total{cgroup=" + sockName + ",peer=" + closedPeer + ",}",
		"tcp_rtt_seconds{cgroup=" + sockName + ",peer=127.0.0.1,}",
		"disk_io_seconds{cgroup=" + ioName + ",device=*,op=write,}",
	}
	sum := r.collectSeries(t, 20*time.Second, want...)
	for _, w := range want {
		s := findSeries(sum, w)
		if (s.Hist == nil || s.Hist.Count < 1) && s.Value < 1 {
			t.Errorf("%s: %+v", w, s)
			continue
		}
		t.Logf("%s: found", w)
	}
	// The reset the client received is an event with its cgroup.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-r.events:
			if e.Kind == eventKindReset && e.Labels["direction"] == "received" && e.Labels["peer"] == closedPeer {
				if e.Labels["cgroup"] != sockName {
					t.Errorf("reset event %+v, want cgroup %s", e, sockName)
				}
				return
			}
		case <-deadline:
			t.Fatal("no reset event for the client's connection to a closed port")
		}
	}
}
