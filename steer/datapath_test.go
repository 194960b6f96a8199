package steer

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func TestParseCgroup2Mount(t *testing.T) {
	in := "25 30 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro\n" +
		"26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n"
	got, err := parseCgroup2Mount(bufio.NewScanner(strings.NewReader(in)))
	if err != nil || got != "/sys/fs/cgroup/unified" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := parseCgroup2Mount(bufio.NewScanner(strings.NewReader(in[:50]))); err == nil {
		t.Fatal("no cgroup2 line: want an error")
	}
}

func TestSteerAddrPortOrder(t *testing.T) {
	a := steerAddr(netip.MustParseAddrPort("127.1.2.3:5432"))
	if a.Family != afInet || a.Addr[0] != 127 || a.Addr[3] != 3 {
		t.Fatalf("%+v", a)
	}
	// 5432 = 0x1538: the first byte in memory must be 0x15.
	if b := [2]byte{byte(a.Port), byte(a.Port >> 8)}; b != [2]byte{0x15, 0x38} {
		t.Fatalf("port bytes %x", b)
	}
}

// testCgroup makes a fresh cgroup (v2) for the test and removes it after.
func testCgroup(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	mp, err := CgroupV2Mount()
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	dir := filepath.Join(mp, fmt.Sprintf("mciv-steer-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("make cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Processes of the test have exited by now; retry briefly while the
		// kernel finishes reaping them.
		for i := 0; i < 50; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("could not remove cgroup %s", dir)
	})
	return dir
}

// helperEnv makes the test binary, re-run with it, dial an address and
// print what it saw (see TestMain).
const helperEnv = "MCIV_STEER_HELPER_DIAL"

// helperNoRead makes the helper print the peer name only (for servers that
// wait for the client, such as PostgreSQL).
const helperNoRead = "MCIV_STEER_HELPER_NOREAD"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		os.Exit(helperDial(addr))
	}
	os.Exit(m.Run())
}

// helperDial connects to addr and prints "peer=<getpeername> got=<first line>".
func helperDial(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fmt.Printf("error=%v\n", err)
		return 0
	}
	defer c.Close()
	if os.Getenv(helperNoRead) != "" {
		fmt.Printf("peer=%s\n", c.RemoteAddr())
		return 0
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Printf("peer=%s got=%s\n", c.RemoteAddr(), strings.TrimSpace(line))
	return 0
}

// dialFrom runs the helper inside cgroup dir and returns its line.
func dialFrom(t *testing.T, ctx context.Context, dir, addr string, env ...string) string {
	t.Helper()
	fd, err := syscall.Open(dir, syscall.O_DIRECTORY|syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("open cgroup: %v", err)
	}
	defer syscall.Close(fd)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+addr), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// nameServer listens on 127.0.0.1 and writes name to every connection.
func nameServer(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", name)
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}

func TestDatapathSteersListedAddressOnly(t *testing.T) {
	dir := testCgroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := NewDatapath(dir)
	if err != nil {
		t.Fatalf("datapath: %v", err)
	}
	defer d.Close()
	for _, h := range d.Hooks() {
		if !h.Attached {
			t.Errorf("hook %s not attached: %s", h.Name, h.Error)
		}
	}
	a, b, other := nameServer(t, "A"), nameServer(t, "B"), nameServer(t, "other")
	svc := netip.MustParseAddrPort("127.77.0.1:15432")
	if err := d.Set(Entry{Service: svc, ServiceID: 1, Backend: a, BackendID: 1}); err != nil {
		t.Fatal(err)
	}
	if got, want := dialFrom(t, ctx, dir, svc.String()), "peer="+svc.String()+" got=A"; got != want {
		t.Fatalf("steered dial: %q, want %q", got, want)
	}
	// A new route applies to new connects.
	if err := d.Set(Entry{Service: svc, ServiceID: 1, Backend: b, BackendID: 2}); err != nil {
		t.Fatal(err)
	}
	if got, want := dialFrom(t, ctx, dir, svc.String()), "peer="+svc.String()+" got=B"; got != want {
		t.Fatalf("steered dial after route change: %q, want %q", got, want)
	}
	// IPv4-mapped through an AF_INET6 socket.
	mapped := "[::ffff:127.77.0.1]:15432"
	if got := dialFrom(t, ctx, dir, mapped); !strings.HasSuffix(got, "got=B") || !strings.Contains(got, "127.77.0.1:15432") {
		t.Fatalf("v4-mapped dial: %q", got)
	}
	// An address not listed is untouched.
	if got, want := dialFrom(t, ctx, dir, other.String()), "peer="+other.String()+" got=other"; got != want {
		t.Fatalf("unlisted dial: %q, want %q", got, want)
	}
	// Outside the cgroup nothing is steered: nobody listens on the service address.
	if c, err := net.DialTimeout("tcp", svc.String(), 2*time.Second); err == nil {
		c.Close()
		t.Fatal("a process outside the cgroup reached the service address")
	}
	// A service with no backend is left alone (refused: no listener).
	if err := d.Set(Entry{Service: svc, ServiceID: 1}); err != nil {
		t.Fatal(err)
	}
	if got := dialFrom(t, ctx, dir, svc.String()); !strings.HasPrefix(got, "error=") {
		t.Fatalf("no backend: %q", got)
	}
	counts, err := d.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[CountKey{1, 1}] != 1 || counts[CountKey{1, 2}] != 2 || counts[CountKey{1, 0}] != 1 {
		t.Fatalf("counts %v", counts)
	}
}
