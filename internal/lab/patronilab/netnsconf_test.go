package patronilab

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func TestLabID(t *testing.T) {
	for name, want := range map[string]string{
		"mpl0a9f3c-pg0": "mpl0a9f3c",
		"mpl0a9f3c-br":  "mpl0a9f3c",
		"mpl0a9f3c-h12": "mpl0a9f3c",
		"mpl0a9f3c-":    "mpl0a9f3c",
	} {
		if got, ok := labID(name); !ok || got != want {
			t.Errorf("labID(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"", "mpl", "mpl0a9f3c", "mpl0A9F3C-pg0", "mpl0a9f3g-pg0", "xpl0a9f3c-pg0", "mpl0a9f3-pg0", "eth0", "mciv-lossnet-test"} {
		if got, ok := labID(name); ok {
			t.Errorf("labID(%q) = %q, want no lab id", name, got)
		}
	}
}

func TestLabNetNames(t *testing.T) {
	_, subnet, _ := net.ParseCIDR("10.42.7.0/24")
	n := &labNet{id: "mplabcdef", subnet: subnet, members: maxNetNSMembers}
	seen := map[string]bool{}
	names := []string{n.bridge()}
	for i := range n.members {
		names = append(names, n.nsName(i), n.hostVeth(i), n.peerVeth(i))
	}
	for _, name := range names {
		if len(name) > 15 || seen[name] {
			t.Errorf("name %q: longer than 15 or repeated", name)
		}
		seen[name] = true
		if id, ok := labID(name); !ok || id != n.id {
			t.Errorf("name %q does not carry the lab id", name)
		}
	}
	if n.nsPath(2) != "/var/run/netns/mplabcdef-pg2" {
		t.Errorf("nsPath(2) = %q", n.nsPath(2))
	}
	if g, m0, m2 := n.gateway().String(), n.memberIP(0).String(), n.memberIP(2).String(); g != "10.42.7.1" || m0 != "10.42.7.10" || m2 != "10.42.7.12" {
		t.Errorf("gateway %s, member 0 %s, member 2 %s", g, m0, m2)
	}
	if last := n.memberIP(maxNetNSMembers - 1); !subnet.Contains(last) || last[3] == 255 {
		t.Errorf("last member address %s", last)
	}
	if subnet.String() != "10.42.7.0/24" {
		t.Errorf("hostIP changed the subnet: %s", subnet)
	}
}

func TestPickSubnet(t *testing.T) {
	cidr := func(s string) *net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip // as net.InterfaceAddrs reports: the host's address
		return n
	}
	got, err := pickSubnet(nil, 0x0102)
	if err != nil || got.String() != "10.1.2.0/24" {
		t.Fatalf("pickSubnet(nil, 0x0102) = %v, %v", got, err)
	}
	used := []*net.IPNet{cidr("127.0.0.1/8"), cidr("10.1.2.5/24"), cidr("10.1.3.77/24"), cidr("fd00::2/64"), cidr("10.1.0.1/22")}
	got, err = pickSubnet(used, 0x0102)
	if err != nil || got.String() != "10.1.4.0/24" {
		t.Fatalf("pickSubnet skipping 10.1.0.0/22 = %v, %v; want 10.1.4.0/24", got, err)
	}
	// A wider network inside a candidate's range, and wrap-around.
	got, err = pickSubnet([]*net.IPNet{cidr("10.255.255.9/32")}, 0xffff)
	if err != nil || got.String() != "10.0.0.0/24" {
		t.Fatalf("pickSubnet wrapping around = %v, %v; want 10.0.0.0/24", got, err)
	}
	if got, err := pickSubnet([]*net.IPNet{cidr("10.0.0.1/8")}, 0); err == nil {
		t.Fatalf("10.0.0.0/8 in use: picked %v", got)
	}
}

func TestPatroniConfigNetNS(t *testing.T) {
	o := Options{NetNS: true}
	o.setDefaults()
	_, subnet, _ := net.ParseCIDR("10.42.7.0/24")
	c := &Cluster{opts: o, apiUser: "patroni", apiPass: "p", superPW: "s",
		net: &labNet{id: "mplabcdef", subnet: subnet, members: 3}}
	m := Member{Name: "pg1", PGPort: 6001, APIPort: 7001, Dir: "/x/pg1", DataDir: "/x/pg1/data",
		Addr: "10.42.7.11", NetNS: "/var/run/netns/mplabcdef-pg1"}
	b, err := json.Marshal(c.patroniConfig(m, 2379))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Restapi struct {
			Listen         string
			ConnectAddress string `json:"connect_address"`
		}
		Etcd3      struct{ Hosts []string }
		Postgresql struct {
			Listen         string
			ConnectAddress string `json:"connect_address"`
			Parameters     map[string]any
			PgHba          []string `json:"pg_hba"`
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	p := got.Postgresql
	if got.Restapi.Listen != "10.42.7.11:7001" || got.Restapi.ConnectAddress != "10.42.7.11:7001" ||
		got.Etcd3.Hosts[0] != "10.42.7.1:2379" ||
		p.Listen != "127.0.0.1,10.42.7.11:6001" || p.ConnectAddress != "10.42.7.11:6001" ||
		p.Parameters["wal_receiver_status_interval"] != "1s" {
		t.Fatalf("config = %s", b)
	}
	hba := strings.Join(p.PgHba, "\n")
	for _, want := range []string{"host replication replicator 10.42.7.0/24 md5", "host all all 10.42.7.0/24 md5", "host all all 127.0.0.1/32 md5"} {
		if !strings.Contains(hba, want) {
			t.Errorf("pg_hba lacks %q:\n%s", want, hba)
		}
	}
	if m.APIURL() != "http://10.42.7.11:7001" {
		t.Errorf("APIURL = %q", m.APIURL())
	}
	// Loopback mode keeps 127.0.0.1 and no extra setting.
	c.net, c.opts.NetNS = nil, false
	m.Addr, m.NetNS = "", ""
	b, _ = json.Marshal(c.patroniConfig(m, 2379))
	if bytes.Contains(b, []byte("wal_receiver_status_interval")) || bytes.Contains(b, []byte("10.42.7")) {
		t.Fatalf("loopback config = %s", b)
	}
	if m.APIURL() != "http://127.0.0.1:7001" {
		t.Errorf("loopback APIURL = %q", m.APIURL())
	}
}

func TestFaultsNeedNetNS(t *testing.T) {
	c := &Cluster{log: slog.New(slog.DiscardHandler), members: []Member{{Name: "pg0", PGPort: 6000, Addr: "127.0.0.1"}}}
	ctx := context.Background()
	for _, err := range []error{c.Degrade(ctx, "pg0", 50), c.Heal(ctx, "pg0")} {
		if err == nil || !strings.Contains(err.Error(), "Options.NetNS") {
			t.Errorf("fault in loopback mode: %v, want an error naming Options.NetNS", err)
		}
	}
	if err := c.Degrade(ctx, "pg9", 50); err == nil {
		t.Error("Degrade of an unknown member: no error")
	}
	if got := c.PGAddr("pg0"); got != "127.0.0.1:6000" {
		t.Errorf("PGAddr = %q", got)
	}
	if c.PGAddr("pg9") != "" || c.NetNSPath("pg0") != "" || c.Subnet() != nil {
		t.Error("unknown member or loopback mode: want empty results")
	}
	cmd := c.Command(ctx, "pg0", "true", "x")
	if filepath.Base(cmd.Path) != "true" || strings.Join(cmd.Args, " ") != "true x" {
		t.Errorf("loopback Command = %v", cmd.Args)
	}
	c.members[0].NetNS = "/var/run/netns/mplabcdef-pg0"
	cmd = c.Command(ctx, "pg0", "ss", "-tln")
	if strings.Join(cmd.Args, " ") != "ip netns exec mplabcdef-pg0 ss -tln" {
		t.Errorf("netns Command = %v", cmd.Args)
	}
	if err := c.Degrade(ctx, "pg0", 101); err == nil {
		t.Error("Degrade by 101%: no error")
	}
}

// TestCleanLeftovers fakes a crashed lab (a namespace with a process
// inside and a bridge, no lock holder) and a live one (lock held): Start's
// cleanup removes the first and keeps the second.
func TestCleanLeftovers(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	testenv.ExclusiveKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const dead, live = "mplde0d00", "mpl11fe00"
	mustRun := func(args ...string) {
		t.Helper()
		if err := runCmd(ctx, nil, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, id := range []string{dead, live} {
			_ = killInNetns(context.Background(), filepath.Join(netnsDir, id+"-pg0"))
			_ = delNetns(context.Background(), id+"-pg0")
			_ = delLink(context.Background(), id+"-br")
			_ = os.Remove(filepath.Join(lockDir, id+".lock"))
		}
	})
	for _, id := range []string{dead, live} {
		mustRun("netns", "add", id+"-pg0")
		mustRun("link", "add", id+"-br", "type", "bridge")
	}
	sleeper := exec.Command("ip", "netns", "exec", dead+"-pg0", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := pidsInNetns(filepath.Join(netnsDir, dead+"-pg0"))
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 && pids[0] == sleeper.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes in the fake namespace: %v, want [%d]", pids, sleeper.Process.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f, locked, err := tryLock(filepath.Join(lockDir, live+".lock"))
	if err != nil || !locked {
		t.Fatalf("lock the live lab: %v, %v", locked, err)
	}
	defer f.Close()

	if err := cleanLeftovers(ctx, "mpl000000", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-ctx.Done():
		t.Fatal("the process in the dead lab's namespace was not killed")
	}
	if _, err := os.Stat(filepath.Join(netnsDir, dead+"-pg0")); err == nil {
		t.Error("dead lab's namespace remains")
	}
	if _, err := net.InterfaceByName(dead + "-br"); err == nil {
		t.Error("dead lab's bridge remains")
	}
	if _, err := os.Stat(filepath.Join(lockDir, dead+".lock")); err == nil {
		t.Error("dead lab's lock file remains")
	}
	if _, err := os.Stat(filepath.Join(netnsDir, live+"-pg0")); err != nil {
		t.Errorf("live lab's namespace removed: %v", err)
	}
	if _, err := net.InterfaceByName(live + "-br"); err != nil {
		t.Errorf("live lab's bridge removed: %v", err)
	}
}

// TestStartFailureCleansNetwork makes etcd exit at once: Start fails after
// making the network, and must remove it.
func TestStartFailureCleansNetwork(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "patroni", "ip", "nft", "nsenter", "setpriv", "false")
	testenv.RequireFile(t, "/usr/lib/postgresql/15/bin/postgres", "PostgreSQL 15 (apt-get install postgresql-15)")
	testenv.ExclusiveKernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := labObjects(t)
	var logs bytes.Buffer
	c, err := Start(ctx, Options{NetNS: true, Etcd: "false", FailureLog: &logs})
	if err == nil {
		_ = c.Stop()
		t.Fatal("Start with an etcd that exits: no error")
	}
	t.Logf("Start: %v", err)
	if after := labObjects(t); after != before {
		t.Fatalf("lab objects before Start:\n%s\nafter its failure:\n%s", before, after)
	}
}

// labObjects lists the namespaces and links that carry a lab id.
func labObjects(t *testing.T) string {
	t.Helper()
	var out []string
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		if _, ok := labID(e.Name()); ok {
			out = append(out, "netns "+e.Name())
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if _, ok := labID(i.Name); ok {
			out = append(out, "link "+i.Name)
		}
	}
	return strings.Join(out, "\n")
}
