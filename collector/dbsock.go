package collector

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/mciv/mciv/bpf"
)

// Ways the collector measures PostgreSQL query latency (Config.PostgresProbes).
const (
	// PostgresProbesSocket times each request at the server's sockets
	// (bpf/dbsock.bpf.c): two tracepoint hits per query, every protocol,
	// TCP connections only. The default.
	PostgresProbesSocket = "socket"
	// PostgresProbesUSDT times each query with the server's USDT probes
	// (bpf/pg.bpf.c): exact query boundaries, Unix-socket connections
	// too, but two to five uprobe traps per query.
	PostgresProbesUSDT = "usdt"
	// PostgresProbesPacket times each query from the server's packets
	// (cgroup_skb programs on its cgroup, reading the wire protocol), so
	// that nothing runs for any other process's sockets; a server in the
	// root cgroup, or a kernel that refuses, gets the socket tracepoints
	// instead, and those missing, the USDT probes. The default.
	PostgresProbesPacket = "packet"
)

// syscallRegs says where a task's syscall number and second argument are
// in its user pt_regs (8-byte slots), and the numbers of recvfrom and read.
type syscallRegs struct {
	nrSlot, bufSlot uint32
	recvfrom, read  uint64
}

// syscallRegsByArch are the layouts dbsock.bpf.c understands; on other
// architectures it measures latency without protocol or text.
var syscallRegsByArch = map[string]syscallRegs{
	"amd64": {nrSlot: 15, bufSlot: 13, recvfrom: 45, read: 0},  // orig_ax, si
	"arm64": {nrSlot: 35, bufSlot: 1, recvfrom: 207, read: 63}, // syscallno, regs[1]
}

// dbSockObject is the socket-level query latency object, with the slow
// query threshold and goarch's register layout set.
func dbSockObject(threshold time.Duration, goarch string) object {
	return object{
		name: "dbsock",
		load: func() (*ebpf.CollectionSpec, error) {
			spec, err := bpf.LoadDBSock()
			if err != nil {
				return nil, err
			}
			set := map[string]any{bpf.DBSockVarSlowQueryNs: uint64(threshold)}
			if r, ok := syscallRegsByArch[goarch]; ok {
				set[bpf.DBSockVarRegsNrSlot] = r.nrSlot
				set[bpf.DBSockVarRegsBufSlot] = r.bufSlot
				set[bpf.DBSockVarNrRecvfrom] = r.recvfrom
				set[bpf.DBSockVarNrRead] = r.read
			}
			for name, v := range set {
				vs, ok := spec.Variables[name]
				if !ok {
					return nil, fmt.Errorf("dbsock object: no variable %s", name)
				}
				if err := vs.Set(v); err != nil {
					return nil, fmt.Errorf("dbsock object: set %s: %w", name, err)
				}
			}
			return spec, nil
		},
		hooks: dbSockHooks,
	}
}

// dbSockHooks are the hooks of the dbsock object. Both ends of a request
// should be attached the same way (the tracepoint fallback has no socket
// cookie and no registers), and the programs cope if they are not.
func dbSockHooks() []hookSpec {
	return []hookSpec{{
		name:  "sock_recv_length",
		kfunc: "sock_recvmsg",
		ways: []attachWay{
			{typ: HookTypeTPBTF, program: bpf.DBSockProgDbSockRecvBtf, attach: attachTracing},
			{typ: HookTypeTracepoint, program: bpf.DBSockProgDbSockRecvTp, attach: attachTracepoint("sock", "sock_recv_length")},
		},
	}, {
		name:  "sock_send_length",
		kfunc: "sock_sendmsg",
		ways: []attachWay{
			{typ: HookTypeTPBTF, program: bpf.DBSockProgDbSockSendBtf, attach: attachTracing},
			{typ: HookTypeTracepoint, program: bpf.DBSockProgDbSockSendTp, attach: attachTracepoint("sock", "sock_send_length")},
		},
	}}
}

// PostgreSQL's exported variables that tell a query connection: the
// backend's database (0 until the connection is set up) and whether it
// is a walsender.
const (
	pgReadyVar  = "MyDatabaseId"
	pgIgnoreVar = "am_walsender"
)

// processVarAddrs returns the run-time addresses, in process pid (under
// procRoot), of the named variables of its executable's dynamic symbol
// table; a name the binary lacks is left out.
func processVarAddrs(procRoot string, pid int, names ...string) (map[string]uint64, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	exe := filepath.Join(dir, "exe")
	f, err := elf.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", exe, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("%s: dynamic symbols: %w", exe, err)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	bias := uint64(0)
	if f.Type == elf.ET_DYN {
		id, err := idOf(exe)
		if err != nil {
			return nil, err
		}
		if bias, err = loadBias(f, filepath.Join(dir, "maps"), id.ino); err != nil {
			return nil, err
		}
	}
	out := make(map[string]uint64)
	for _, s := range syms {
		if want[s.Name] && s.Value != 0 && elf.ST_TYPE(s.Info) == elf.STT_OBJECT {
			out[s.Name] = s.Value + bias
		}
	}
	return out, nil
}

// loadBias returns where a position-independent executable (inode ino)
// is loaded, from the process's maps: the start of its mapping at file
// offset 0, less the virtual address of its first loadable segment.
func loadBias(f *elf.File, mapsPath string, ino uint64) (uint64, error) {
	first := ^uint64(0)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			first = p.Vaddr &^ (p.Align - 1)
			break
		}
	}
	if first == ^uint64(0) {
		return 0, errors.New("no loadable segment at file offset 0")
	}
	m, err := os.Open(mapsPath)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	sc := bufio.NewScanner(m)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[2] != "00000000" {
			continue
		}
		if n, err := strconv.ParseUint(fields[4], 10, 64); err != nil || n != ino {
			continue
		}
		start, err := strconv.ParseUint(strings.SplitN(fields[0], "-", 2)[0], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", mapsPath, fields[0], err)
		}
		return start - first, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", mapsPath, err)
	}
	return 0, fmt.Errorf("%s: executable (inode %d) not mapped at offset 0", mapsPath, ino)
}

// The layout of dbsock's db_hist rows (bpf/dbsock.bpf.c): the first
// dbHistInstances servers each have one row per protocol; a row's buckets
// are histo's from dbHistFirst on.
const (
	dbHistInstances = 5
	dbHistProtocols = 3
	dbHistFirst     = 320 // histo.Index(1024)
	dbNoSlot        = 0xffff
)

// dbListeners keeps the kernel's db_listeners map (and its port bitmap,
// db_ports) equal to the database servers the collector watches, gives the
// first servers their rows of the db_hist histograms and reads them. Safe
// for concurrent use.
type dbListeners struct {
	m     *ebpf.Map
	unix  *ebpf.Map // db_unix_listeners; nil: Unix sockets not measured
	ports *ebpf.Map
	hist  *ebpf.Map // db_hist; nil: every server's latency in hot_aggregates

	mu       sync.Mutex
	have     map[bpf.DBSockDbListenerKey]bpf.DBSockDbListener
	haveUnix map[bpf.DBSockDbUnixKey]bpf.DBSockDbListener
	words    [1024]uint64                 // the port bitmap as written
	vars     map[int]bpf.DBSockDbListener // by server pid: its variables, read once
	slots    [dbHistInstances]int         // the pid each slot of db_hist is for, 0 free
	used     [dbHistInstances]bool        // the slot held counts once: zero it before reuse
	// packets are the listeners of servers measured through their
	// packets: left out of the port bitmap, so that the socket
	// tracepoints do not count their TCP connections twice.
	packets map[bpf.DBSockDbListenerKey]bool
}

// dbListenerMaps are the kernel maps dbListeners keeps; unix and hist may
// be nil.
type dbListenerMaps struct {
	tcp, unix, ports, hist *ebpf.Map
}

func newDBListeners(m dbListenerMaps) *dbListeners {
	return &dbListeners{
		m: m.tcp, unix: m.unix, ports: m.ports, hist: m.hist,
		have:     map[bpf.DBSockDbListenerKey]bpf.DBSockDbListener{},
		haveUnix: map[bpf.DBSockDbUnixKey]bpf.DBSockDbListener{},
		vars:     map[int]bpf.DBSockDbListener{},
		packets:  map[bpf.DBSockDbListenerKey]bool{},
	}
}

// takeSlot gives pid a free slot of db_hist, zeroed, or returns dbNoSlot
// when none is left (or no db_hist).
func (l *dbListeners) takeSlot(pid int) (uint32, error) {
	if l.hist == nil {
		return dbNoSlot, nil
	}
	for i, owner := range l.slots {
		if owner != 0 {
			continue
		}
		if l.used[i] {
			// Counts of the server that had it: the new one starts
			// from zero.
			zero := make([]bpf.DBSockDbHistRow, ebpf.MustPossibleCPU())
			for p := range dbHistProtocols {
				if err := l.hist.Put(uint32(i*dbHistProtocols+p), zero); err != nil {
					return dbNoSlot, fmt.Errorf("clear histogram slot %d: %w", i, err)
				}
			}
		}
		l.slots[i], l.used[i] = pid, true
		return uint32(i), nil
	}
	return dbNoSlot, nil
}

// addHistograms adds to cur the db_query_seconds of the servers with a
// slot of db_hist, summed over CPUs, under the aggregates map's keys.
func (l *dbListeners) addHistograms(cur map[bpf.TCPAggKey]uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hist == nil {
		return nil
	}
	var rows []bpf.DBSockDbHistRow
	for slot, pid := range l.slots {
		if pid == 0 {
			continue
		}
		for proto := range dbHistProtocols {
			if err := l.hist.Lookup(uint32(slot*dbHistProtocols+proto), &rows); err != nil {
				return fmt.Errorf("read %s slot %d: %w", bpf.DBSockMapDbHist, slot, err)
			}
			k := bpf.TCPAggKey{Signal: bpf.AggDBQuerySeconds, Aux: uint32(pid), Aux2: uint32(proto)}
			sum := k
			sum.Bucket = bpf.AggSumBucket
			for _, r := range rows {
				for b, n := range r.Buckets {
					if n != 0 {
						k.Bucket = uint32(dbHistFirst + b)
						cur[k] += n
					}
				}
				if r.Sum != 0 {
					cur[sum] += r.Sum
				}
			}
		}
	}
	return nil
}

// pgServer is one running PostgreSQL server to measure.
type pgServer struct {
	pid, port int
	netns     uint32
	unix      []bpf.DBSockDbUnixKey // the files of its Unix sockets
	packets   bool                  // its TCP connections are measured through its packets
}

// syncPostgres makes the map hold exactly the servers given (read under
// procRoot), and returns the errors of servers it could not inspect
// (measured anyway, without telling setup and walsender connections
// apart).
func (l *dbListeners) syncPostgres(procRoot string, servers []pgServer) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	want := make(map[bpf.DBSockDbListenerKey]bpf.DBSockDbListener, len(servers))
	clear(l.packets)
	wantUnix := make(map[bpf.DBSockDbUnixKey]bpf.DBSockDbListener)
	live := make(map[int]bool, len(servers))
	for _, s := range servers {
		live[s.pid] = true
	}
	// Servers gone first, so that a new one may have the slot they free.
	for pid := range l.vars {
		if !live[pid] {
			delete(l.vars, pid)
			for i, owner := range l.slots {
				if owner == pid {
					l.slots[i] = 0
				}
			}
		}
	}
	for _, s := range servers {
		v, ok := l.vars[s.pid]
		if !ok {
			v = bpf.DBSockDbListener{Instance: uint32(s.pid)}
			addrs, err := processVarAddrs(procRoot, s.pid, pgReadyVar, pgIgnoreVar)
			if err != nil {
				errs = append(errs, fmt.Errorf("postgres pid %d: %w", s.pid, err))
			}
			v.ReadyAddr, v.IgnoreAddr = addrs[pgReadyVar], addrs[pgIgnoreVar]
			if v.Slot, err = l.takeSlot(s.pid); err != nil {
				errs = append(errs, fmt.Errorf("postgres pid %d: %w", s.pid, err))
			}
			l.vars[s.pid] = v
		}
		k := bpf.DBSockDbListenerKey{Netns: s.netns, Port: uint16(s.port)}
		want[k] = v
		if s.packets {
			l.packets[k] = true
		}
		for _, k := range s.unix {
			wantUnix[k] = v
		}
	}
	errs = append(errs, syncMap(l.m, l.have, want)...)
	if l.unix != nil {
		errs = append(errs, syncMap(l.unix, l.haveUnix, wantUnix)...)
	}
	return append(errs, l.syncPorts()...)
}

// syncMap makes the kernel map m, whose contents are have, hold exactly
// want, and keeps have up to date.
func syncMap[K comparable, V comparable](m *ebpf.Map, have, want map[K]V) []error {
	var errs []error
	for k := range have {
		if _, ok := want[k]; !ok {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("forget listener %+v: %w", k, err))
				continue
			}
			delete(have, k)
		}
	}
	for k, v := range want {
		if old, ok := have[k]; ok && old == v {
			continue
		}
		if err := m.Put(k, v); err != nil {
			errs = append(errs, fmt.Errorf("add listener %+v: %w", k, err))
			continue
		}
		have[k] = v
	}
	return errs
}

// syncPorts writes the words of the port bitmap that changed.
func (l *dbListeners) syncPorts() []error {
	var words [1024]uint64
	for k := range l.have {
		if !l.packets[k] {
			words[k.Port/64] |= 1 << (k.Port % 64)
		}
	}
	if len(l.haveUnix) > 0 {
		words[0] |= 1 // port 0: some server listens on a Unix socket
	}
	var errs []error
	for i, w := range words {
		if w == l.words[i] {
			continue
		}
		if err := l.ports.Put(uint32(i), w); err != nil {
			errs = append(errs, fmt.Errorf("port bitmap word %d: %w", i, err))
			continue
		}
		l.words[i] = w
	}
	return errs
}
