package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/wire"
)

// Slow queries that begin outside every sampling window. While the packet
// path samples (sampling.go), a request that arrives while db_skb_ingress
// is detached is not timed. PostgreSQL sets each backend's process title
// (update_process_title, on by default on Linux) to "postgres: USER DB
// ADDR(PORT) TAG", TAG being "idle", "idle in transaction" or the running
// statement's command tag ("SELECT"). While sampling, the collector looks
// at the titles of the servers' backends every slowScanPeriod: a backend
// busy (not idle) for longer than the slow-query threshold on one request
// (its connection received no bytes meanwhile: TCP_INFO of the backend's
// socket, borrowed with pidfd_getfd) whose request the packet path is not
// timing (the connection's db_conn_storage holds no request of the current
// generation) becomes a db_slow_query event once it ends, its duration
// known to about ±slowScanPeriod, its text the command tag.
const slowScanPeriod = 250 * time.Millisecond

// slowScanLabel marks the events of the title scan.
const slowScanLabel = "process_title"

// backendTitle is what a client backend's process title says.
type backendTitle struct {
	client string // ADDR(PORT)
	tag    string // "idle", "SELECT", ...
}

// busy reports whether the backend runs a request.
func (t backendTitle) busy() bool { return !strings.HasPrefix(t.tag, "idle") }

// parseBackendTitle parses the cmdline of a PostgreSQL process; ok is
// false for anything but a client backend on a TCP connection.
func parseBackendTitle(cmdline []byte) (backendTitle, bool) {
	s := string(cmdline)
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "postgres: ")
	if !ok {
		return backendTitle{}, false
	}
	f := strings.Fields(rest)
	// The client's address is the first field ADDR(PORT) after the user
	// and database (a cluster_name, "NAME:", may come first).
	for i := 2; i < len(f); i++ {
		a := f[i]
		open := strings.LastIndexByte(a, '(')
		if open <= 0 || !strings.HasSuffix(a, ")") {
			continue
		}
		if _, err := strconv.Atoi(a[open+1 : len(a)-1]); err != nil {
			continue
		}
		if i+1 >= len(f) {
			return backendTitle{}, false
		}
		return backendTitle{client: a, tag: strings.Join(f[i+1:], " ")}, true
	}
	return backendTitle{}, false
}

// backendConn is what the scan learns of a backend's client connection.
type backendConn struct {
	rx     uint64 // bytes received by the connection (TCP_INFO)
	timed  bool   // the packet path times the request in flight
	direct bool   // the connection could be read at all
	// packetStart is when the packet path saw the request in flight
	// begin, in any generation (zero: it did not).
	packetStart time.Time
}

// connReader reads a backend's client socket: borrowed with pidfd_getfd,
// closed at once (holding it would keep the connection open after the
// backend closes it).
type connReader struct {
	conns *ebpf.Map // db_conn_storage (nil: the packet path is not asked)
	gen   func() (uint32, error)
}

// read returns the connection of backend pid, its socket's fd number
// (fd < 0: look for it among pid's fds), and the fd number found.
func (r connReader) read(pid, fd int, askPackets bool) (backendConn, int, error) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return backendConn{}, fd, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pfd)
	candidates := []int{fd}
	if fd < 0 {
		candidates = socketFDs(pid)
	}
	for _, n := range candidates {
		s, err := unix.PidfdGetfd(pfd, n, 0)
		if err != nil {
			continue
		}
		info, err := unix.GetsockoptTCPInfo(s, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			unix.Close(s)
			continue
		}
		c := backendConn{rx: info.Bytes_received, direct: true}
		if askPackets && r.conns != nil {
			c.timed, c.packetStart, err = r.packetTimed(s)
		}
		unix.Close(s)
		return c, n, err
	}
	return backendConn{}, -1, fmt.Errorf("backend %d: no TCP socket found", pid)
}

// packetTimed reports whether the packet path times the request in flight
// on socket s, and when it saw a request in flight begin (in any
// generation: one begun before a gap in sampling is not timed, but its
// start is right).
func (r connReader) packetTimed(s int) (bool, time.Time, error) {
	var c bpf.DBSockDbConn
	if err := r.conns.Lookup(uint32(s), &c); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return false, time.Time{}, nil
		}
		return false, time.Time{}, fmt.Errorf("look up the connection's packet state: %w", err)
	}
	gen, err := r.gen()
	if err != nil {
		return false, time.Time{}, err
	}
	var start time.Time
	if c.StartNs != 0 {
		start = monotonicToWall(c.StartNs, time.Now())
	}
	return c.StartNs != 0 && c.Gen == gen, start, nil
}

// monotonicToWall converts ns of CLOCK_MONOTONIC (bpf_ktime_get_ns) to
// wall time, given the wall time now.
func monotonicToWall(ns uint64, now time.Time) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}
	}
	return now.Add(-time.Duration(ts.Nano() - int64(ns)))
}

// socketFDs lists the fd numbers of pid that are sockets.
func socketFDs(pid int) []int {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(l, "socket:") {
			continue
		}
		if n, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, n)
		}
	}
	return fds
}

// backendState is one backend's request as the scans saw it.
type backendState struct {
	title     backendTitle
	fd        int       // the client socket's fd number in the backend, -1 unknown
	busy      bool      // a request runs
	rx        uint64    // bytes the connection had received when it began
	before    time.Time // the scan before the one that first saw it busy
	first     time.Time // the first scan that saw it busy
	last      time.Time // the last scan that saw it busy
	judged    bool      // the packet path was asked once the request was slow
	reportIt  bool      // slow, and not timed by the packet path
	preSpell  bool      // running at the first scan of a spell of sampling
	postmastr uint32
}

// slowScanner follows the backends' titles while the packet path samples.
type slowScanner struct {
	threshold time.Duration
	// read reads backend pid's connection (connReader.read; tests
	// replace it).
	read     func(pid, fd int, askPackets bool) (backendConn, int, error)
	procRoot string
	backends map[int]*backendState
	lastScan time.Time
	// report publishes a slow query: the postmaster, title, start and
	// duration.
	report func(postmaster uint32, title backendTitle, start time.Time, d time.Duration)
}

// backendsOf lists the children of postmaster pid.
func backendsOf(procRoot string, pid uint32) []int {
	p := strconv.Itoa(int(pid))
	b, err := os.ReadFile(filepath.Join(procRoot, p, "task", p, "children"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// scan looks at every backend of the postmasters once, at now.
func (s *slowScanner) scan(now time.Time, postmasters map[uint32]bool) {
	seen := make(map[int]bool)
	for pm := range postmasters {
		for _, pid := range backendsOf(s.procRoot, pm) {
			raw, err := os.ReadFile(filepath.Join(s.procRoot, strconv.Itoa(pid), "cmdline"))
			if err != nil {
				continue
			}
			t, ok := parseBackendTitle(raw)
			if !ok {
				continue
			}
			seen[pid] = true
			b := s.backends[pid]
			if b == nil {
				b = &backendState{fd: -1, postmastr: pm}
				s.backends[pid] = b
			}
			s.step(pid, b, t, now)
		}
	}
	for pid, b := range s.backends {
		if !seen[pid] {
			s.end(b, now) // exited, or no longer a client backend
			delete(s.backends, pid)
		}
	}
	s.lastScan = now
}

// step updates backend pid's state with its title at now.
func (s *slowScanner) step(pid int, b *backendState, t backendTitle, now time.Time) {
	if !t.busy() {
		s.end(b, now)
		b.title = t
		return
	}
	slow := b.busy && now.Sub(b.first) >= s.threshold && !b.judged
	conn, fd, err := s.read(pid, b.fd, slow)
	b.fd = fd
	if err != nil || !conn.direct {
		// Without the connection a new request cannot be told from
		// the last: nothing is reported.
		s.end(b, now)
		b.title = t
		b.judged, b.reportIt = true, false
		b.busy, b.first, b.last = true, now, now
		return
	}
	if b.busy && (t.tag != b.title.tag || conn.rx != b.rx) {
		s.end(b, now) // a new request since the last scan
	}
	if !b.busy {
		*b = backendState{title: t, fd: b.fd, busy: true, rx: conn.rx, before: s.lastScan, first: now, last: now, postmastr: b.postmastr}
		if s.lastScan.IsZero() {
			// The first scan of a spell of sampling: the request
			// began before, when the packet path saw every one
			// begin. It may still miss its end (the spell can take
			// egress down, and a new generation then makes its start
			// stale): asked like any other once slow, and timed from
			// the start the packet path saw.
			b.preSpell, b.before = true, now
		}
		return
	}
	b.title, b.last = t, now
	if slow {
		b.judged, b.reportIt = true, !conn.timed
		if b.reportIt && b.preSpell && !conn.packetStart.IsZero() && conn.packetStart.Before(b.first) {
			b.before, b.first = conn.packetStart, conn.packetStart
		}
	}
}

// end closes backend b's request, seen ending by the scan at now.
func (s *slowScanner) end(b *backendState, now time.Time) {
	if b.busy && b.reportIt {
		// It began between two scans and ended between two: the
		// estimate is the distance of the middles.
		start := midway(b.before, b.first)
		if d := midway(b.last, now).Sub(start); d >= s.threshold {
			s.report(b.postmastr, b.title, start, d)
		}
	}
	b.busy, b.judged, b.reportIt = false, false, false
}

// forget drops every backend's state (sampling ended: the packet path
// times every request again).
func (s *slowScanner) forget() {
	clear(s.backends)
	s.lastScan = time.Time{}
}

// drain follows, once sampling has ended, only the requests that were
// running when it ended: one begun outside a window is timed by nobody
// else (the packet path never saw it start), so it is reported at its
// end as during the spell. A backend's next request is the packet
// path's: it is not followed. When nothing is left it forgets.
func (s *slowScanner) drain(now time.Time) {
	for pid, b := range s.backends {
		if !b.busy {
			delete(s.backends, pid)
			continue
		}
		raw, err := os.ReadFile(filepath.Join(s.procRoot, strconv.Itoa(pid), "cmdline"))
		t, ok := parseBackendTitle(raw)
		if err != nil || !ok {
			s.end(b, now) // exited, or no longer a client backend
			delete(s.backends, pid)
			continue
		}
		s.step(pid, b, t, now)
		if !b.busy || b.first.Equal(now) {
			delete(s.backends, pid) // ended; a new request is not followed
		}
	}
	s.lastScan = now
	if len(s.backends) == 0 {
		s.forget()
	}
}

// scanSlowBackends scans the backends' titles every slowScanPeriod while
// sampler samples, and after it stops until the requests running then
// have ended (drain), until ctx ends.
func (c *Collector) scanSlowBackends(ctx context.Context, sampler *querySampler, conns *ebpf.Map, procRoot string) {
	gen := func() (uint32, error) {
		var g uint64
		if err := sampler.m.Lookup(uint32(sampleGen), &g); err != nil {
			return 0, fmt.Errorf("read the sampling generation: %w", err)
		}
		return uint32(g), nil
	}
	s := &slowScanner{
		threshold: c.cfg.SlowQueryThreshold,
		read:      c.countUnread(connReader{conns: conns, gen: gen}.read),
		procRoot:  procRoot,
		backends:  make(map[int]*backendState),
		report: func(pm uint32, t backendTitle, start time.Time, d time.Duration) {
			c.publishEvent(c.scannedSlowQuery(pm, t, start, d))
		},
	}
	t := time.NewTicker(slowScanPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			servers, on := sampler.sampling()
			if !on {
				if len(s.backends) > 0 {
					s.drain(now)
				}
				continue
			}
			s.scan(now, servers)
		}
	}
}

// countUnread wraps read: a backend whose socket cannot be read is
// counted, and the first such failure is logged (without the
// capability every busy backend fails alike).
func (c *Collector) countUnread(read func(pid, fd int, askPackets bool) (backendConn, int, error)) func(pid, fd int, askPackets bool) (backendConn, int, error) {
	var warned bool
	return func(pid, fd int, askPackets bool) (backendConn, int, error) {
		conn, n, err := read(pid, fd, askPackets)
		if err != nil {
			c.m.slowScanUnread.Inc()
			if !warned {
				warned = true
				c.logger.Warn("slow-query title scan cannot read a backend's socket; slow queries begun outside sampling windows go unreported (needs CAP_SYS_PTRACE)", "pid", pid, "err", err)
			}
		}
		return conn, n, err
	}
}

// scannedSlowQuery is the db_slow_query event of a request the title scan
// timed.
func (c *Collector) scannedSlowQuery(postmaster uint32, t backendTitle, start time.Time, d time.Duration) *wire.Event {
	labels := map[string]string{"instance": c.names.instance(postmaster), "protocol": "unknown", "measured": slowScanLabel, "client": t.client}
	if cg := c.names.cgroup(postmaster); cg != "" {
		labels["cgroup"] = cg
	}
	return &wire.Event{
		Cluster: c.cfg.Cluster,
		Host:    c.cfg.Host,
		Time:    start.Add(d),
		Kind:    eventKindSlowQuery,
		Labels:  labels,
		Value:   d.Seconds(),
		Text:    fmt.Sprintf("<%s; started outside a sampling window, timed from the process title ±%s>", t.tag, slowScanPeriod),
	}
}
