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
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

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

// helperTimes makes the helper dial that many times and print a tally of
// the first lines it read ("A=3 B=2").
const helperTimes = "MCIV_STEER_HELPER_TIMES"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" && os.Getenv(helperTimes) != "" {
		os.Exit(helperTally(addr, os.Getenv(helperTimes)))
	}
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

// helperTally dials addr n times and prints how often each first line came.
func helperTally(addr, times string) int {
	n, _ := strconv.Atoi(times)
	tally := map[string]int{}
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			tally["error"]++
			continue
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		tally[strings.TrimSpace(line)]++
	}
	var out []string
	for k, v := range tally {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	fmt.Println(strings.Join(out, " "))
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
	if err := d.Set(Entry{Service: svc, ServiceID: 1, Backends: []Target{{Addr: a, ID: 1, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := dialFrom(t, ctx, dir, svc.String()), "peer="+svc.String()+" got=A"; got != want {
		t.Fatalf("steered dial: %q, want %q", got, want)
	}
	// A new route applies to new connects.
	if err := d.Set(Entry{Service: svc, ServiceID: 1, Backends: []Target{{Addr: b, ID: 2, Weight: 1}}}); err != nil {
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

func TestDatapathSpreadsByWeight(t *testing.T) {
	dir := testCgroup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := NewDatapath(dir)
	if err != nil {
		t.Fatalf("datapath: %v", err)
	}
	defer d.Close()
	a, b, c := nameServer(t, "A"), nameServer(t, "B"), nameServer(t, "C")
	svc := netip.MustParseAddrPort("127.77.0.5:15432")
	if err := d.Set(Entry{Service: svc, ServiceID: 7, Backends: []Target{{Addr: a, ID: 1, Weight: 1}, {Addr: b, ID: 2, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	// Round robin per CPU: each CPU alternates, so 60 connects from any
	// mix of CPUs give each backend at least 60/2 - (CPUs) of them.
	tally := dialFrom(t, ctx, dir, svc.String(), helperTimes+"=60")
	var na, nb int
	if _, err := fmt.Sscanf(tally, "A=%d B=%d", &na, &nb); err != nil || na+nb != 60 || na < 20 || nb < 20 {
		t.Fatalf("equal weights: %q", tally)
	}
	// Weights 3:1 over A and C.
	if err := d.Set(Entry{Service: svc, ServiceID: 7, Backends: []Target{{Addr: a, ID: 1, Weight: 3}, {Addr: c, ID: 3, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	tally = dialFrom(t, ctx, dir, svc.String(), helperTimes+"=80")
	var nc int
	if _, err := fmt.Sscanf(tally, "A=%d C=%d", &na, &nc); err != nil || na+nc != 80 || nc < 10 || nc > 30 {
		t.Fatalf("weights 3:1: %q", tally)
	}
	// One backend left (the other degraded): all go there.
	if err := d.Set(Entry{Service: svc, ServiceID: 7, Backends: []Target{{Addr: c, ID: 3, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	if tally = dialFrom(t, ctx, dir, svc.String(), helperTimes+"=10"); tally != "C=10" {
		t.Fatalf("one backend: %q", tally)
	}
	counts, err := d.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if got := counts[CountKey{7, 1}] + counts[CountKey{7, 2}] + counts[CountKey{7, 3}]; got != 150 {
		t.Fatalf("counts %v", counts)
	}
	es, err := d.Entries()
	if err != nil || len(es) != 1 || len(es[0].Backends) != 1 || es[0].Backends[0].Addr != c || es[0].ServiceID != 7 {
		t.Fatalf("entries %+v %v", es, err)
	}
	// Bad entries are refused with the place named.
	if err := d.Set(Entry{Service: svc, ServiceID: 7, Backends: []Target{{Addr: a, ID: 1}}}); err == nil || !strings.Contains(err.Error(), svc.String()) {
		t.Fatalf("zero weight: %v", err)
	}
}

// testPinDir is a fresh pin directory in bpffs, removed after the test.
func testPinDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(PinRoot, fmt.Sprintf("test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { _, _ = Detach(dir) })
	return dir
}

// attachedPrograms counts the programs attached to cgroup dir for a hook.
func attachedPrograms(t *testing.T, dir string, at ebpf.AttachType) int {
	t.Helper()
	res, err := link.QueryPrograms(link.QueryOptions{Target: mustOpenFD(t, dir), Attach: at})
	if err != nil {
		t.Fatalf("query programs: %v", err)
	}
	return len(res.Programs)
}

func mustOpenFD(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

func TestDatapathPinnedOutlivesAgent(t *testing.T) {
	dir := testCgroup(t)
	pins := testPinDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b := nameServer(t, "A"), nameServer(t, "B")
	svc := netip.MustParseAddrPort("127.77.0.6:15432")
	d, err := OpenDatapath(dir, pins)
	if err != nil {
		t.Fatalf("datapath: %v", err)
	}
	for _, h := range d.Hooks() {
		if !h.Attached || !h.Pinned || h.Adopted {
			t.Fatalf("first open: hook %+v", h)
		}
	}
	if err := d.Set(Entry{Service: svc, ServiceID: 1, Backends: []Target{{Addr: a, ID: 1, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	// The agent stops: connects stay steered.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := dialFrom(t, ctx, dir, svc.String()), "peer="+svc.String()+" got=A"; got != want {
		t.Fatalf("after the agent stopped: %q, want %q", got, want)
	}
	// A new agent adopts: the same route, the programs attached once.
	d2, err := OpenDatapath(dir, pins)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	for _, h := range d2.Hooks() {
		if !h.Attached || !h.Adopted {
			t.Fatalf("reopen: hook %+v not adopted", h)
		}
	}
	if n := attachedPrograms(t, dir, ebpf.AttachCGroupInet4Connect); n != 1 {
		t.Fatalf("%d connect4 programs on the cgroup after the restart, want 1", n)
	}
	es, err := d2.Entries()
	if err != nil || len(es) != 1 || es[0].Service != svc || es[0].Backends[0].Addr != a {
		t.Fatalf("adopted entries %+v %v", es, err)
	}
	if c, _ := d2.Counts(); c[CountKey{1, 1}] != 1 {
		t.Fatalf("counts did not survive: %v", c)
	}
	if err := d2.Set(Entry{Service: svc, ServiceID: 1, Backends: []Target{{Addr: b, ID: 2, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	if got := dialFrom(t, ctx, dir, svc.String()); got != "peer="+svc.String()+" got=B" {
		t.Fatalf("adopted datapath: %q", got)
	}
	// Detach (while the agent still holds its handles) restores plain connects.
	done, err := Detach(pins)
	if err != nil {
		t.Fatalf("detach: %v", err)
	}
	if len(done) < 3 || !strings.Contains(strings.Join(done, "\n"), "detached cgroup/connect4") {
		t.Fatalf("detach said %q", done)
	}
	if got := dialFrom(t, ctx, dir, svc.String()); !strings.HasPrefix(got, "error=") {
		t.Fatalf("after detach: %q (want a plain, refused connect)", got)
	}
	if n := attachedPrograms(t, dir, ebpf.AttachCGroupInet4Connect); n != 0 {
		t.Fatalf("%d connect4 programs after detach", n)
	}
	_ = d2.Close()
	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Fatalf("pin dir left: %v", err)
	}
	if done, err := Detach(pins); err != nil || !strings.Contains(done[0], "nothing pinned") {
		t.Fatalf("second detach: %q %v", done, err)
	}
}

func TestDatapathPinnedOnAnotherCgroupIsMoved(t *testing.T) {
	dir1, dir2 := testCgroup(t), testCgroup(t)
	pins := testPinDir(t)
	d, err := OpenDatapath(dir1, pins)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2, err := OpenDatapath(dir2, pins)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	for _, h := range d2.Hooks() {
		if h.Adopted || !h.Pinned {
			t.Fatalf("hook %+v: a link pinned on another cgroup must not be adopted", h)
		}
	}
	if n := attachedPrograms(t, dir1, ebpf.AttachCGroupInet4Connect); n != 0 {
		t.Fatalf("old cgroup keeps %d programs", n)
	}
	if n := attachedPrograms(t, dir2, ebpf.AttachCGroupInet4Connect); n != 1 {
		t.Fatalf("new cgroup has %d programs", n)
	}
}
