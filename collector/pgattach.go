package collector

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mciv/mciv/bpf"
)

// HookTypeUSDT is a uprobe on a USDT probe point, its semaphore honoured.
const HookTypeUSDT = "usdt"

// pgProbe is one PostgreSQL USDT probe mciv attaches, and its program.
type pgProbe struct {
	name    string // e.g. query__start
	program string
	withArg bool // the program reads the probe's first argument
}

// pgProbes are the probes of bpf/pg.bpf.c.
var pgProbes = []pgProbe{
	{"query__start", bpf.PGProgPgQueryStart, true},
	{"query__done", bpf.PGProgPgQueryDone, false},
	{"query__parse__start", bpf.PGProgPgQueryParseStart, true},
	{"query__execute__start", bpf.PGProgPgQueryExecuteStart, false},
	{"query__execute__done", bpf.PGProgPgQueryExecuteDone, false},
}

// pgHookName is the hook name of a PostgreSQL probe in HookStatus.
func pgHookName(probe string) string { return "postgresql:" + probe }

// pgObject is the PostgreSQL object, with the slow query threshold set.
// Its programs are attached by a pgAttacher, not through hooks.
func pgObject(threshold time.Duration) object {
	return object{
		name: "postgresql",
		load: func() (*ebpf.CollectionSpec, error) {
			spec, err := bpf.LoadPG()
			if err != nil {
				return nil, err
			}
			v, ok := spec.Variables["slow_query_ns"]
			if !ok {
				return nil, fmt.Errorf("pg object: no slow_query_ns variable")
			}
			if err := v.Set(uint64(threshold)); err != nil {
				return nil, fmt.Errorf("pg object: set slow_query_ns: %w", err)
			}
			return spec, nil
		},
		hooks: func() []hookSpec { return nil },
	}
}

// pgAttacher attaches the PostgreSQL programs to every server binary it is
// shown.
type pgAttacher struct {
	binaryAttacher
	probes  []pgProbe                // the probes to attach, a subset of pgProbes
	byName  map[string]*ebpf.Program // the loaded programs by name
	lastErr map[string]string        // per probe, the last error
}

func newPGAttacher(p *probes, probes []pgProbe) *pgAttacher {
	rows := make([]HookStatus, len(probes))
	names := make([]string, len(probes))
	for i, pr := range probes {
		rows[i] = HookStatus{Name: pgHookName(pr.name), Type: HookTypeUSDT}
		names[i] = pr.program
	}
	a := &pgAttacher{
		binaryAttacher: newBinaryAttacher(rows, "no PostgreSQL server binary found (installed or running); looked again every discovery interval"),
		probes:         probes, byName: make(map[string]*ebpf.Program), lastErr: make(map[string]string),
	}
	for i, prog := range a.load(p, names...) {
		a.byName[names[i]] = prog
	}
	a.attachBinary = a.attachUSDT
	a.rowErr = func(i int) string { return a.lastErr[a.probes[i].name] }
	return a
}

// attachUSDT attaches every probe at each of its places in the binary.
func (a *pgAttacher) attachUSDT(path string) ([]link.Link, error) {
	probes, err := readUSDTProbes(path)
	if err != nil {
		return nil, err
	}
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var links []link.Link
	fail := func(err error) ([]link.Link, error) {
		for _, l := range links {
			l.Close()
		}
		return nil, err
	}
	for _, pr := range a.probes {
		n := 0
		for _, u := range probes {
			if u.Provider != "postgresql" || u.Name != pr.name {
				continue
			}
			cookie := uint64(argNone)
			if pr.withArg {
				args := u.Args
				if i := indexSpace(args); i >= 0 {
					args = args[:i]
				}
				if cookie, err = hostArgCookie(args); err != nil {
					a.lastErr[pr.name] = err.Error()
					return fail(fmt.Errorf("%s: %w", pr.name, err))
				}
			}
			l, err := ex.Uprobe(pr.name, a.byName[pr.program], &link.UprobeOptions{
				Address:      u.LocationOffset,
				RefCtrOffset: u.SemaphoreOffset,
				Cookie:       cookie,
			})
			if err != nil {
				a.lastErr[pr.name] = explain("uprobe", err)
				return fail(fmt.Errorf("attach %s at %#x: %w", pr.name, u.LocationOffset, err))
			}
			links = append(links, l)
			n++
		}
		if n == 0 {
			a.lastErr[pr.name] = "probe not in the binary"
			return fail(fmt.Errorf("%s has no USDT probe postgresql:%s (built without --enable-dtrace?)", path, pr.name))
		}
	}
	return links, nil
}

func indexSpace(s string) int {
	for i := range len(s) {
		if s[i] == ' ' {
			return i
		}
	}
	return -1
}

// dbAttachers attach the database probes; either may be nil when its
// object did not load.
type dbAttachers struct {
	pg     *pgAttacher  // PostgreSQL's USDT probes (PostgresProbesUSDT)
	pgSock *dbListeners // PostgreSQL's sockets (PostgresProbesSocket, PostgresProbesPacket)
	// packets attaches the packet programs to servers' cgroups
	// (PostgresProbesPacket); probes park the socket tracepoints while
	// no server needs them.
	packets *packetAttacher
	probes  *probes
	// sampler samples the packet path when the servers are busy; nil
	// outside packet mode.
	sampler *querySampler
	my      *mysqlAttacher
}

func (d dbAttachers) close() {
	if d.pg != nil {
		d.pg.close()
	}
	if d.my != nil {
		d.my.close()
	}
}

// discoverDatabases attaches to new database server binaries and names
// running instances every PostgresDiscoveryInterval until ctx ends.
func (c *Collector) discoverDatabases(ctx context.Context, d dbAttachers, procRoot string) {
	t := time.NewTicker(c.cfg.PostgresDiscoveryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.scanDatabasesOnce(d, procRoot)
	}
}

// scanDatabasesOnce looks at the host once.
func (c *Collector) scanDatabasesOnce(d dbAttachers, procRoot string) {
	var rows []HookStatus
	if d.pg != nil || d.pgSock != nil {
		s := scanPostgres(procRoot, installedPostgres)
		if a := d.pg; a != nil {
			for _, b := range s.binaries.list {
				c.logAttach("PostgreSQL", b, a.attach)
			}
			rows = append(rows, a.statuses()...)
		}
		var servers []pgServer
		needTracepoints := false
		packetServers := map[uint32]bool{}
		for pid, port := range s.postmasters {
			ns, err := netnsInode(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"))
			if err != nil || (c.cfg.NetNS != "" && ns != c.hostNetNS) || (c.pgOnly != nil && !c.pgOnly(pid)) {
				continue // gone, or another host's (see Config.NetNS)
			}
			c.names.instances.set(uint32(pid), pgInstance(port))
			c.names.instances.setCgroup(uint32(pid), processCgroup(procRoot, pid))
			srv := pgServer{pid: pid, port: port, netns: ns}
			if d.pgSock == nil {
				rows = append(rows, queryPathRow(pgInstance(port), QueryPathUSDT, ""))
				servers = append(servers, srv)
				continue
			}
			// Its Unix sockets' files; none read: TCP only.
			var unixConns int
			srv.unix, unixConns, _ = unixSockets(procRoot, pid)
			row := c.pickQueryPath(d, procRoot, &srv)
			if !srv.packets || unixConns > 0 {
				needTracepoints = true
			}
			if srv.packets {
				packetServers[uint32(pid)] = true
			}
			if srv.packets && unixConns > 0 {
				row.Note = fmt.Sprintf("%d Unix-socket connections: the socket tracepoints measure those", unixConns)
			}
			rows = append(rows, row)
			servers = append(servers, srv)
		}
		if d.sampler != nil {
			d.sampler.setServers(packetServers, !needTracepoints)
		}
		if d.pgSock != nil {
			for _, err := range d.pgSock.syncPostgres(procRoot, servers) {
				c.logger.Warn("PostgreSQL server measured without telling connection setup and walsenders apart", "err", err)
			}
		}
		if d.probes != nil && d.probes.isParked(socketTracepointPrograms[0]) == needTracepoints {
			if err := d.probes.park(!needTracepoints, socketTracepointPrograms...); err != nil {
				c.logger.Warn("cannot switch the socket tracepoints", "on", needTracepoints, "err", err)
			} else {
				c.logger.Info("socket tracepoints switched for PostgreSQL query latency", "attached", needTracepoints)
			}
		}
	}
	if a := d.my; a != nil {
		s := scanMySQL(procRoot, installedMySQL)
		for _, b := range s.binaries.list {
			c.logAttach("MySQL", b, a.attach)
		}
		for pid, port := range s.servers {
			c.names.instances.set(uint32(pid), mysqlInstance(port))
			c.names.instances.setCgroup(uint32(pid), processCgroup(procRoot, pid))
		}
		rows = append(rows, a.statuses()...)
	}
	c.setDBStatuses(rows)
	c.dbScans.Add(1)
}

func (c *Collector) logAttach(what string, b serverBinary, attach func(serverBinary) (bool, error)) {
	ok, err := attach(b)
	switch {
	case err != nil:
		c.logger.Warn("cannot attach to a "+what+" binary: its queries are not measured", "binary", b.path, "err", err)
	case ok:
		c.logger.Info("attached to "+what+" probes", "binary", b.path)
	}
}

// setDBStatuses replaces the database rows of Hooks.
func (c *Collector) setDBStatuses(rows []HookStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statuses = slices.DeleteFunc(c.statuses, func(h HookStatus) bool {
		return h.Type == HookTypeUSDT || h.Type == HookTypeUprobe || h.Type == HookTypeUretprobe || strings.HasPrefix(h.Name, queryPathHook(""))
	})
	c.statuses = append(c.statuses, rows...)
	for _, r := range rows {
		up := 0.0
		if r.Attached {
			up = 1
		}
		c.m.hookUp.WithLabelValues(r.Name).Set(up)
	}
}

// socketTracepointPrograms are the socket tracepoint programs of the
// dbsock object, parked while every server is measured through its
// packets.
var socketTracepointPrograms = []string{bpf.DBSockProgDbSockRecvBtf, bpf.DBSockProgDbSockSendBtf, bpf.DBSockProgDbSockRecvTp, bpf.DBSockProgDbSockSendTp}

// pickQueryPath decides how srv's query latency is measured: through its
// packets when d can (srv.packets set), else the socket tracepoints; it
// returns the row that says so.
func (c *Collector) pickQueryPath(d dbAttachers, procRoot string, srv *pgServer) HookStatus {
	inst := pgInstance(srv.port)
	if d.packets == nil {
		return queryPathRow(inst, QueryPathSocketTracepoints, "")
	}
	dir, err := packetCgroup(procRoot, c.names.cgroups.roots[cgroupSockets], srv.pid)
	if err == nil {
		err = d.packets.attach(dir)
	}
	if err != nil {
		return queryPathRow(inst, QueryPathSocketTracepoints, "not through its packets: "+err.Error())
	}
	srv.packets = true
	return queryPathRow(inst, QueryPathPackets, "cgroup_skb on "+dir)
}
