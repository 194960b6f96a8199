package patronilab_test

import (
	"context"
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
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/patronilab"
	"github.com/mciv/mciv/internal/lab/testenv"
)

// TestNetNSLab runs a lab whose members live in network namespaces: each
// PostgreSQL really is in its member's namespace, replication crosses the
// bridge, Degrade cuts the leader's PostgreSQL port off from the host and
// Heal restores it, and Stop leaves no namespace, bridge or veth.
func TestNetNSLab(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "patroni", "etcd", "ip", "nft", "nsenter", "setpriv")
	testenv.RequireFile(t, "/usr/lib/postgresql/15/bin/postgres", "PostgreSQL 15 (apt-get install postgresql-15)")
	testenv.ExclusiveKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	start := time.Now()
	lab, err := patronilab.Start(ctx, patronilab.Options{
		NetNS:      true,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		FailureLog: testWriter{t},
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			lab.DumpLogs(testWriter{t})
		}
		if !stopped {
			if err := lab.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
		}
	})
	subnet := lab.Subnet()
	t.Logf("netns lab ready in %s at %s, subnet %s", time.Since(start).Round(time.Millisecond), lab.Dir(), subnet)
	if subnet == nil || !subnet.IP.IsPrivate() || subnet.IP.To4()[0] != 10 {
		t.Fatalf("subnet %v: want a /24 in 10.0.0.0/8", subnet)
	}

	// Names and addresses.
	var nsNames []string
	prefix := ""
	for i, m := range lab.Members() {
		ns := lab.NetNSPath(m.Name)
		name := filepath.Base(ns)
		if ns != m.NetNS || filepath.Dir(ns) != "/var/run/netns" || name != fmt.Sprintf("%s-pg%d", name[:9], i) {
			t.Fatalf("member %s: namespace %q / %q", m.Name, ns, m.NetNS)
		}
		if prefix == "" {
			prefix = name[:9]
		} else if name[:9] != prefix {
			t.Fatalf("namespaces %v and %s do not share the lab's prefix", nsNames, name)
		}
		nsNames = append(nsNames, name)
		ip := net.ParseIP(m.Addr)
		if ip == nil || !subnet.Contains(ip) || ip.To4()[3] != byte(10+i) {
			t.Fatalf("member %s address %q: want .%d of %s", m.Name, m.Addr, 10+i, subnet)
		}
		if got, want := lab.PGAddr(m.Name), net.JoinHostPort(m.Addr, strconv.Itoa(m.PGPort)); got != want {
			t.Fatalf("PGAddr(%s) = %q, want %q", m.Name, got, want)
		}
		if got := lab.APIURL(m.Name); got != "http://"+net.JoinHostPort(m.Addr, strconv.Itoa(m.APIPort)) {
			t.Fatalf("APIURL(%s) = %q", m.Name, got)
		}
		if !strings.HasPrefix(name, "mpl") {
			t.Fatalf("namespace %q lacks the mpl prefix", name)
		}
	}
	if h, _, err := net.SplitHostPort(strings.TrimPrefix(lab.EtcdURL(), "http://")); err != nil || !subnet.Contains(net.ParseIP(h)) {
		t.Fatalf("etcd URL %q is not on the lab's subnet", lab.EtcdURL())
	}

	leader, err := lab.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s", leader)

	// SQL over the leader's address; the server sees the host's bridge
	// address as the client.
	out, err := lab.ExecSQL(ctx, leader, "SELECT inet_server_addr(), inet_client_addr(), pg_is_in_recovery()")
	if err != nil {
		t.Fatal(err)
	}
	lm := member(t, lab, leader)
	gw := net.IP(append(net.IP(nil), subnet.IP.To4()...))
	gw[3] = 1
	if want := lm.Addr + "|" + gw.String() + "|f"; out != want {
		t.Fatalf("server/client address on the leader = %q, want %q", out, want)
	}

	// Each PostgreSQL lives in its member's namespace.
	for _, m := range lab.Members() {
		pid := postmaster(t, m.DataDir)
		var ns, proc syscall.Stat_t
		if err := syscall.Stat(m.NetNS, &ns); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &proc); err != nil {
			t.Fatal(err)
		}
		if proc.Ino != ns.Ino || proc.Dev != ns.Dev {
			t.Fatalf("%s: postmaster %d is in netns inode %d, want %s (inode %d)", m.Name, pid, proc.Ino, m.NetNS, ns.Ino)
		}
		// ... and listens on the member's address there.
		ss, err := lab.Command(ctx, m.Name, "ss", "-Htln", "sport = :"+strconv.Itoa(m.PGPort)).CombinedOutput()
		if err != nil || !strings.Contains(string(ss), m.Addr+":"+strconv.Itoa(m.PGPort)) {
			t.Fatalf("%s: ss in the namespace (%v):\n%s", m.Name, err, ss)
		}
	}

	// Replicas stream from the leader over their own addresses.
	rows, err := lab.ExecSQL(ctx, leader, "SELECT application_name, client_addr, state FROM pg_stat_replication ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(rows, "\n")
	if len(lines) != 2 {
		t.Fatalf("pg_stat_replication on %s:\n%s\nwant 2 rows", leader, rows)
	}
	for _, l := range lines {
		f := strings.Split(l, "|")
		if len(f) != 3 || f[2] != "streaming" {
			t.Fatalf("replication row %q", l)
		}
		rm := member(t, lab, f[0])
		if ip := net.ParseIP(f[1]); ip == nil || !subnet.Contains(ip) || f[1] != rm.Addr {
			t.Fatalf("replica %s connects from %q, want its address %s in %s", f[0], f[1], rm.Addr, subnet)
		}
	}
	var other string
	for _, n := range lab.MemberNames() {
		if n != leader {
			other = n
			break
		}
	}
	replicaSetting, err := lab.ExecSQL(ctx, other, "SHOW wal_receiver_status_interval")
	if err != nil || replicaSetting != "1s" {
		t.Fatalf("wal_receiver_status_interval on %s = %q, %v; want 1s", other, replicaSetting, err)
	}

	// Degrade cuts the leader's PostgreSQL off from the host; the others
	// still answer. Heal restores it.
	if err := dial(ctx, lab.PGAddr(leader)); err != nil {
		t.Fatalf("leader before Degrade: %v", err)
	}
	if err := lab.Degrade(ctx, leader, 100); err != nil {
		t.Fatal(err)
	}
	nft, err := lab.Command(ctx, leader, "nft", "list", "table", "inet", "mciv_fault").CombinedOutput()
	if err != nil || !strings.Contains(string(nft), fmt.Sprintf("tcp dport %d drop", lm.PGPort)) {
		t.Fatalf("fault table on %s (%v):\n%s", leader, err, nft)
	}
	err = dial(ctx, lab.PGAddr(leader))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial the degraded leader %s: %v, want a timeout", lab.PGAddr(leader), err)
	}
	if err := dial(ctx, lab.PGAddr(other)); err != nil {
		t.Fatalf("dial %s while the leader is degraded: %v", other, err)
	}
	if out, err := lab.ExecSQL(ctx, other, "SELECT 1"); err != nil || out != "1" {
		t.Fatalf("SQL on %s while the leader is degraded: %q, %v", other, out, err)
	}
	if err := lab.Heal(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if err := lab.Heal(ctx, leader); err != nil {
		t.Fatalf("second Heal: %v", err)
	}
	if err := dial(ctx, lab.PGAddr(leader)); err != nil {
		t.Fatalf("leader after Heal: %v", err)
	}
	if err := lab.WaitReady(ctx); err != nil {
		t.Fatalf("cluster after Heal: %v", err)
	}

	// Stop removes everything.
	stopped = true
	if err := lab.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	nsList, err := exec.CommandContext(ctx, "ip", "netns", "list").CombinedOutput()
	if err != nil || strings.Contains(string(nsList), prefix) {
		t.Fatalf("ip netns list after Stop (%v):\n%s", err, nsList)
	}
	links, err := exec.CommandContext(ctx, "ip", "-o", "link").CombinedOutput()
	if err != nil || strings.Contains(string(links), prefix) {
		t.Fatalf("ip -o link after Stop (%v):\n%s", err, links)
	}
	if _, err := os.Stat(lab.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lab directory after Stop: %v", err)
	}
	if err := lab.Degrade(ctx, leader, 10); err == nil {
		t.Fatal("Degrade after Stop: no error")
	}
}

func member(t *testing.T, lab *patronilab.Cluster, name string) patronilab.Member {
	t.Helper()
	for _, m := range lab.Members() {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no member %q", name)
	return patronilab.Member{}
}

// postmaster reads the postmaster's pid from dataDir.
func postmaster(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("postmaster.pid in %s: %v", dataDir, err)
	}
	return pid
}

// dial opens a TCP connection to addr from the host and closes it; a
// dropped SYN makes it time out after 2 s.
func dial(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
