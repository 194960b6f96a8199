package collector

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/histo"
)

func TestLoadBias(t *testing.T) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var first uint64
	found := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			first, found = p.Vaddr&^(p.Align-1), true
			break
		}
	}
	if !found {
		t.Fatal("this test binary has no loadable segment at offset 0")
	}
	maps := filepath.Join(t.TempDir(), "maps")
	text := strings.Join([]string{
		"5555aaaa0000-5555aaab0000 r--p 00001000 08:01 777 /x/postgres", // not offset 0
		"5555bbbb0000-5555bbbc0000 r--p 00000000 08:01 999 /other",      // another inode
		"5555cccc0000-5555cccd0000 r--p 00000000 08:01 777 /x/postgres",
	}, "\n") + "\n"
	if err := os.WriteFile(maps, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	bias, err := loadBias(f, maps, 777)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(0x5555cccc0000) - first; bias != want {
		t.Errorf("bias %#x, want %#x", bias, want)
	}
	if _, err := loadBias(f, maps, 123); err == nil || !strings.Contains(err.Error(), "not mapped") {
		t.Errorf("unmapped inode: err %v", err)
	}
}

// TestProcessVarAddrsPostgres finds MyDatabaseId and am_walsender in a
// running postmaster, and checks them against its memory: both are zero
// in the postmaster, and they lie in its writable mappings.
func TestProcessVarAddrsPostgres(t *testing.T) {
	requireKernel(t) // root, to read another user's /proc/PID/mem
	pg := startPG(t)
	addrs, err := processVarAddrs("/proc", pg.Pid(), pgReadyVar, pgIgnoreVar)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open("/proc/" + strconv.Itoa(pg.Pid()) + "/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, name := range []string{pgReadyVar, pgIgnoreVar} {
		a, ok := addrs[name]
		if !ok {
			t.Fatalf("%s not found in %v", name, addrs)
		}
		b := make([]byte, 4)
		if _, err := mem.ReadAt(b[:1], int64(a)); err != nil {
			t.Fatalf("%s at %#x: %v", name, a, err)
		}
		if b[0] != 0 {
			t.Errorf("%s at %#x is %d in the postmaster, want 0", name, a, b[0])
		}
	}
}

// dbSockMaps creates the named maps of the dbsock object (closed when
// the test ends) and returns its spec.
func dbSockMaps(t *testing.T, names ...string) (*ebpf.CollectionSpec, map[string]*ebpf.Map) {
	t.Helper()
	requireKernel(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	spec, err := bpf.LoadDBSock()
	if err != nil {
		t.Fatal(err)
	}
	maps := make(map[string]*ebpf.Map, len(names))
	for _, name := range names {
		m, err := ebpf.NewMap(spec.Maps[name])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		maps[name] = m
	}
	return spec, maps
}

// TestDBListenersSync fills the kernel maps and empties them again.
func TestDBListenersSync(t *testing.T) {
	_, maps := dbSockMaps(t, bpf.DBSockMapDbListeners, bpf.DBSockMapDbPorts, bpf.DBSockMapDbUnixListeners)
	listeners, ports, unixListeners := maps[bpf.DBSockMapDbListeners], maps[bpf.DBSockMapDbPorts], maps[bpf.DBSockMapDbUnixListeners]
	l := newDBListeners(dbListenerMaps{tcp: listeners, unix: unixListeners, ports: ports})
	self := os.Getpid() // a Go binary: no PostgreSQL variables, so no addresses
	sock := bpf.DBSockDbUnixKey{Ino: 1234, Dev: 8 << 20}
	servers := []pgServer{{pid: self, port: 5432, netns: 42}, {pid: self, port: 6543, netns: 43, unix: []bpf.DBSockDbUnixKey{sock}}}
	for _, err := range l.syncPostgres("/proc", servers) {
		t.Log(err) // expected: none, the symbols are simply absent
	}
	var v bpf.DBSockDbListener
	if err := listeners.Lookup(bpf.DBSockDbListenerKey{Netns: 42, Port: 5432}, &v); err != nil {
		t.Fatalf("listener 42/5432: %v", err)
	}
	if v.Instance != uint32(self) || v.ReadyAddr != 0 || v.IgnoreAddr != 0 {
		t.Errorf("listener %+v", v)
	}
	bit := func(port uint16) bool {
		var w uint64
		if err := ports.Lookup(uint32(port/64), &w); err != nil {
			t.Fatal(err)
		}
		return w>>(port%64)&1 == 1
	}
	if !bit(5432) || !bit(6543) || bit(5433) || !bit(0) {
		t.Errorf("port bits: 5432 %v, 6543 %v, 5433 %v, 0 (Unix) %v", bit(5432), bit(6543), bit(5433), bit(0))
	}
	if err := unixListeners.Lookup(sock, &v); err != nil || v.Instance != uint32(self) {
		t.Errorf("Unix listener: %+v %v", v, err)
	}
	if errs := l.syncPostgres("/proc", servers[:1]); len(errs) != 0 {
		t.Fatal(errs)
	}
	if err := listeners.Lookup(bpf.DBSockDbListenerKey{Netns: 43, Port: 6543}, &v); err == nil {
		t.Error("listener 43/6543 still there after its server went")
	}
	if bit(6543) || !bit(5432) || bit(0) {
		t.Errorf("port bits after removal: 6543 %v, 5432 %v, 0 (Unix) %v", bit(6543), bit(5432), bit(0))
	}
	if err := unixListeners.Lookup(sock, &v); err == nil {
		t.Error("Unix listener still there after its server went")
	}
}

// TestDBHistSlots gives the first servers their rows of db_hist, reads
// their counts as aggregates keys, and clears a slot before it serves
// another server.
func TestDBHistSlots(t *testing.T) {
	spec, maps := dbSockMaps(t, bpf.DBSockMapDbListeners, bpf.DBSockMapDbPorts, bpf.DBSockMapDbHist)
	if n := spec.Maps[bpf.DBSockMapDbHist].MaxEntries; n != dbHistInstances*dbHistProtocols {
		t.Fatalf("db_hist has %d rows, the collector expects %d", n, dbHistInstances*dbHistProtocols)
	}
	l := newDBListeners(dbListenerMaps{tcp: maps[bpf.DBSockMapDbListeners], ports: maps[bpf.DBSockMapDbPorts], hist: maps[bpf.DBSockMapDbHist]})
	// Pids no process has: their variables cannot be read (errors
	// expected), their listeners are added all the same.
	const base = 1 << 22
	var servers []pgServer
	for i := range dbHistInstances + 1 {
		servers = append(servers, pgServer{pid: base + i, port: 5432 + i, netns: 7})
	}
	l.syncPostgres("/proc", servers)
	slotOf := func(port int) uint32 {
		var v bpf.DBSockDbListener
		if err := maps[bpf.DBSockMapDbListeners].Lookup(bpf.DBSockDbListenerKey{Netns: 7, Port: uint16(port)}, &v); err != nil {
			t.Fatalf("listener of port %d: %v", port, err)
		}
		return v.Slot
	}
	seen := map[uint32]bool{}
	for i := range dbHistInstances {
		s := slotOf(5432 + i)
		if s >= dbHistInstances || seen[s] {
			t.Errorf("server %d: slot %d (taken: %v)", i, s, seen)
		}
		seen[s] = true
	}
	if s := slotOf(5432 + dbHistInstances); s != dbNoSlot {
		t.Errorf("server beyond the slots has slot %d, want %#x", s, dbNoSlot)
	}

	// Counts on two CPUs of the first server's extended-protocol row.
	first := slotOf(5432)
	rows := make([]bpf.DBSockDbHistRow, ebpf.MustPossibleCPU())
	rows[0].Buckets[10], rows[0].Sum = 3, 3000
	if len(rows) > 1 {
		rows[1].Buckets[10], rows[1].Sum = 2, 2000
	}
	want := uint64(3)
	if len(rows) > 1 {
		want = 5
	}
	row := first*dbHistProtocols + 1
	if err := maps[bpf.DBSockMapDbHist].Put(row, rows); err != nil {
		t.Fatal(err)
	}
	cur := map[bpf.TCPAggKey]uint64{}
	if err := l.addHistograms(cur); err != nil {
		t.Fatal(err)
	}
	k := bpf.TCPAggKey{Signal: bpf.AggDBQuerySeconds, Aux: base, Aux2: 1, Bucket: dbHistFirst + 10}
	if cur[k] != want {
		t.Errorf("bucket %d of server 0: %d, want %d (all: %v)", k.Bucket, cur[k], want, cur)
	}
	k.Bucket = bpf.AggSumBucket
	if cur[k] != want*1000 {
		t.Errorf("sum of server 0: %d, want %d", cur[k], want*1000)
	}
	if len(cur) != 2 {
		t.Errorf("%d keys, want 2: %v", len(cur), cur)
	}

	// The first server goes, a new one comes: it gets the freed slot,
	// cleared.
	next := append(slices.Clone(servers[1:]), pgServer{pid: base + 100, port: 7000, netns: 7})
	l.syncPostgres("/proc", next)
	if s := slotOf(7000); s != first {
		t.Fatalf("new server has slot %d, want the freed %d", s, first)
	}
	cur = map[bpf.TCPAggKey]uint64{}
	if err := l.addHistograms(cur); err != nil {
		t.Fatal(err)
	}
	if len(cur) != 0 {
		t.Errorf("a reused slot still holds the old server's counts: %v", cur)
	}
}

// TestDBHistLayout checks the collector's reading of db_hist rows against
// the C layout: the first bucket is histo's for 1 us, the last for just
// under 2^38 ns.
func TestDBHistLayout(t *testing.T) {
	if got := histo.Index(1024); got != dbHistFirst {
		t.Errorf("histo.Index(1 us) = %d, dbHistFirst = %d", got, dbHistFirst)
	}
	var row bpf.DBSockDbHistRow
	if last := histo.Index(1<<38 - 1); int(last) != dbHistFirst+len(row.Buckets)-1 {
		t.Errorf("histo.Index(2^38-1) = %d, the last row bucket is %d", last, dbHistFirst+len(row.Buckets)-1)
	}
}
