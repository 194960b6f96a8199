package collector

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/lab/pglab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"golang.org/x/sys/unix"
)

func TestParseBackendTitle(t *testing.T) {
	for _, c := range []struct {
		in         string
		ok         bool
		client, tg string
	}{
		{"postgres: postgres postgres 127.0.0.1(57030) SELECT\x00\x00\x00", true, "127.0.0.1(57030)", "SELECT"},
		{"postgres: bob shop ::1(4242) idle in transaction\x00", true, "::1(4242)", "idle in transaction"},
		{"postgres: main: bob shop 10.0.0.2(5) UPDATE waiting", true, "10.0.0.2(5)", "UPDATE waiting"},
		{"postgres: bob shop [local] SELECT", false, "", ""},
		{"postgres: checkpointer \x00\x00", false, "", ""},
		{"postgres: autovacuum launcher ", false, "", ""},
		{"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/x", false, "", ""},
		{"postgres: bob shop 127.0.0.1(1)", false, "", ""},
	} {
		got, ok := parseBackendTitle([]byte(c.in))
		if ok != c.ok || got.client != c.client || got.tag != c.tg {
			t.Errorf("%q: %+v %v, want %q %q %v", c.in, got, ok, c.client, c.tg, c.ok)
		}
	}
	if (backendTitle{tag: "idle in transaction"}).busy() || !(backendTitle{tag: "SELECT"}).busy() {
		t.Error("busy")
	}
}

// TestSlowScannerSteps drives the scanner through titles and connection
// readings: a request is one while its tag holds and its connection
// receives nothing; it is reported once, at its end, unless the packet
// path times it.
func TestSlowScannerSteps(t *testing.T) {
	type reading struct {
		tag   string
		rx    uint64
		timed bool
		start time.Time
	}
	var got []time.Duration
	var cur reading
	asked := 0
	s := &slowScanner{
		threshold: 500 * time.Millisecond,
		backends:  map[int]*backendState{},
		read: func(pid, fd int, ask bool) (backendConn, int, error) {
			if ask {
				asked++
			}
			return backendConn{rx: cur.rx, timed: cur.timed, direct: true, packetStart: cur.start}, 7, nil
		},
		report: func(pm uint32, title backendTitle, start time.Time, d time.Duration) {
			if pm != 1 || title.client != "h(1)" {
				t.Errorf("report %d %+v", pm, title)
			}
			got = append(got, d)
		},
	}
	t0 := time.Unix(1000, 0)
	s.backends[42] = &backendState{fd: -1, postmastr: 1}
	steps := []reading{
		{tag: "idle"},                                                                                      // 0 ms
		{tag: "SELECT", rx: 10}, {tag: "SELECT", rx: 10}, {tag: "SELECT", rx: 10}, {tag: "SELECT", rx: 10}, // 250..1000: one request
		{tag: "idle", rx: 10},                                                                              // 1250: it ended; reported, about 1 s
		{tag: "SELECT", rx: 20}, {tag: "SELECT", rx: 30}, {tag: "SELECT", rx: 40}, {tag: "SELECT", rx: 50}, // new requests each scan
		{tag: "UPDATE", rx: 50}, {tag: "UPDATE", rx: 50}, {tag: "UPDATE", rx: 50, timed: true}, {tag: "UPDATE", rx: 50, timed: true}, // packet-timed
		{tag: "idle in transaction", rx: 50},
	}
	for i, r := range steps {
		cur = r
		now := t0.Add(time.Duration(i) * slowScanPeriod)
		s.step(42, s.backends[42], backendTitle{client: "h(1)", tag: r.tag}, now)
		s.lastScan = now
	}
	// A backend busy at the first scan of a spell began when the packet
	// path saw every request begin: not reported while the packet path
	// times it; reported, timed from the start the packet path saw, when
	// the spell made that start stale (egress down, a new generation).
	spell := func(base int, r reading) {
		s.forget()
		s.backends[42] = &backendState{fd: -1, postmastr: 1}
		for i, tag := range []string{"SELECT", "SELECT", "SELECT", "SELECT", "idle"} {
			cur = r
			cur.tag = tag
			now := t0.Add(time.Duration(base+i) * slowScanPeriod)
			s.step(42, s.backends[42], backendTitle{client: "h(1)", tag: tag}, now)
			s.lastScan = now
		}
	}
	spell(100, reading{rx: 60, timed: true})
	if len(got) != 1 {
		t.Fatalf("reported %v: a request running at a spell's start that the packet path times was reported", got)
	}
	// Begun 2 scans before the spell, ended between its 4th and 5th:
	// 1.375 s.
	spell(200, reading{rx: 70, start: t0.Add(198 * slowScanPeriod)})
	if len(got) != 2 || got[1] != 1375*time.Millisecond {
		t.Fatalf("reported %v: want a second report of 1.375 s, from the packet path's start", got)
	}
	spell(300, reading{rx: 80}) // no start known: from the first scan, 0.875 s
	if len(got) != 3 || got[2] != 875*time.Millisecond {
		t.Fatalf("reported %v: want a third report of 0.875 s", got)
	}
	got = got[:1]
	asked -= 3
	if len(got) != 1 || got[0] < 750*time.Millisecond || got[0] > 1250*time.Millisecond {
		t.Errorf("reported %v, want one of about 1 s", got)
	}
	if asked != 2 {
		t.Errorf("the packet path asked %d times, want once per slow request (2)", asked)
	}
}

// TestSlowScannerDrainsAfterSampling: a request begun outside the windows
// and still running when sampling ends is followed to its end and
// reported once; a request that begins after sampling ended is the packet
// path's and is not followed.
func TestSlowScannerDrainsAfterSampling(t *testing.T) {
	root := t.TempDir()
	title := func(pid int, tag string) {
		t.Helper()
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte("postgres: u d h("+strconv.Itoa(pid)+") "+tag+"\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "1", "task", "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "1", "task", "1", "children"), []byte("42 43"), 0o644); err != nil {
		t.Fatal(err)
	}
	type report struct {
		client string
		d      time.Duration
	}
	var got []report
	s := &slowScanner{
		threshold: 500 * time.Millisecond,
		procRoot:  root,
		backends:  map[int]*backendState{},
		read: func(pid, fd int, ask bool) (backendConn, int, error) {
			return backendConn{rx: 10, direct: true}, 7, nil
		},
		report: func(_ uint32, title backendTitle, _ time.Time, d time.Duration) {
			got = append(got, report{title.client, d})
		},
	}
	t0 := time.Unix(1000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * slowScanPeriod) }
	title(42, "idle")
	title(43, "idle")
	s.scan(at(0), map[uint32]bool{1: true})
	title(42, "SELECT") // begins in the spell, outside a window
	for i := 1; i <= 3; i++ {
		s.scan(at(i), map[uint32]bool{1: true})
	}
	// Sampling ends; 42 is still running, 43 begins a request now.
	title(43, "UPDATE")
	s.drain(at(4))
	s.drain(at(5))
	if len(got) != 0 {
		t.Fatalf("reported %v before the request ended", got)
	}
	if _, ok := s.backends[43]; ok {
		t.Error("a request begun after sampling ended is followed")
	}
	title(42, "idle")
	s.drain(at(6))
	if len(got) != 1 || got[0].client != "h(42)" || got[0].d < 1000*time.Millisecond || got[0].d > 1500*time.Millisecond {
		t.Fatalf("reported %v, want h(42) once, about 1.25 s", got)
	}
	if len(s.backends) != 0 || !s.lastScan.IsZero() {
		t.Errorf("after the drain: %d backends, last scan %v; want none, forgotten", len(s.backends), s.lastScan)
	}
	s.drain(at(7))
	if len(got) != 1 {
		t.Errorf("reported again: %v", got)
	}
}

// TestPostgresSlowQueryOutsideWindows runs a real PostgreSQL busy enough
// for the packet path to sample. A slow query begun while no window can
// open must be reported from the process titles, timed to about a scan
// period, with its command tag; then, windows opening again, each slow
// query must be reported once, by the packet path or the titles.
func TestPostgresSlowQueryOutsideWindows(t *testing.T) {
	requireKernel(t)
	pg := startPGIn(t, serverCgroup(t))
	r := runKernelCollectorFor(t, Config{Interval: 200 * time.Millisecond, PostgresDiscoveryInterval: 200 * time.Millisecond, QuerySampleQPS: 100, SlowQueryThreshold: 500 * time.Millisecond}, only("tcp", "dbsock"), pg.Pid())
	r.waitDBScan(t)
	if row := r.queryPath(t, pg.Instance()); row.Type != QueryPathPackets {
		t.Fatalf("query latency row %+v, want %q", row, QueryPathPackets)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	load := startLoad(t, ctx, pg, 2000)
	defer func() {
		if err := load.stop(); err != nil {
			t.Errorf("load: %v", err)
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for !r.sampled() {
		if time.Now().After(deadline) {
			t.Fatalf("not sampled under load: %+v", r.c.Hooks())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.c.mu.Lock()
	p, sampler := r.c.attached, r.c.sampler
	r.c.mu.Unlock()

	// No window opens: the query begins with ingress detached.
	sampler.closed.Store(true)
	for !p.isParked(bpf.DBSockProgDbSkbIngress) {
		if time.Now().After(deadline) {
			t.Fatal("ingress never detached")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a window open meanwhile has closed
	for len(r.events) > 0 {
		<-r.events
	}
	if out, err := pg.Psql(ctx, "SELECT pg_sleep(1.5)"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	scanned, packets := slowEvents(t, r, 1, 20*time.Second)
	if len(scanned) != 1 || len(packets) != 0 {
		t.Fatalf("one slow query begun outside the windows: title events %+v, packet events %+v", scanned, packets)
	}
	e := scanned[0]
	t.Logf("title event: %+v", e)
	if e.Value < 1.0 || e.Value > 2.0 || !strings.HasPrefix(e.Text, "<SELECT;") || e.Labels["instance"] != pg.Instance() || !strings.Contains(e.Labels["client"], "(") {
		t.Errorf("event %+v: want about 1.5 s, tag SELECT, instance %s, a client", e, pg.Instance())
	}
	if !r.sampled() {
		t.Fatalf("sampling ended under load")
	}

	// Windows again: each slow query is reported once, whichever way.
	sampler.closed.Store(false)
	const slow = 5
	if out, err := pg.Pgbench(ctx, "SELECT pg_sleep(1.2);", slow, pglab.Simple); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	scanned, packets = slowEvents(t, r, slow, 20*time.Second)
	time.Sleep(time.Second) // a second report of one would come by now
	more, morePackets := slowEvents(t, r, 0, 0)
	scanned, packets = append(scanned, more...), append(packets, morePackets...)
	t.Logf("%d slow queries reported by the titles, %d by the packet path", len(scanned), len(packets))
	if len(scanned)+len(packets) != slow {
		t.Errorf("%d slow queries run, reported: titles %+v, packets %+v", slow, scanned, packets)
	}
	for _, e := range append(scanned, packets...) {
		if e.Value < 0.7 || e.Value > 1.7 {
			t.Errorf("event %+v: want about 1.2 s", e)
		}
	}
}

// slowEvents gathers the db_slow_query events of pg_sleep queries (the
// title scan's, and the packet path's) until want arrived or timeout.
func slowEvents(t *testing.T, r *running, want int, timeout time.Duration) (scanned, packets []*wire.Event) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if len(scanned)+len(packets) >= want {
			select {
			case e := <-r.events:
				scanned, packets = sortSlow(e, scanned, packets)
				continue
			default:
				return scanned, packets
			}
		}
		select {
		case e := <-r.events:
			scanned, packets = sortSlow(e, scanned, packets)
		case <-deadline:
			return scanned, packets
		}
	}
}

func sortSlow(e *wire.Event, scanned, packets []*wire.Event) ([]*wire.Event, []*wire.Event) {
	switch {
	case e.Kind != eventKindSlowQuery:
	case e.Labels["measured"] == slowScanLabel:
		scanned = append(scanned, e)
	case strings.Contains(e.Text, "pg_sleep"):
		packets = append(packets, e)
	}
	return scanned, packets
}

// BenchmarkSlowScan times one scan of a real PostgreSQL's backends, eight
// of them busy (each busy one costs a pidfd_getfd and a TCP_INFO read):
// the scan's CPU per second is four times this.
func BenchmarkSlowScan(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.RequireFile(b, pglab.DefaultBinDir+"/postgres", "Debian's postgresql-15 (scripts/deps.sh installs it)")
	testenv.RequireCommand(b, "psql")
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pg, err := pglab.Start(sctx, pglab.Options{})
	scancel()
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	const busy = 8
	for range busy {
		wg.Go(func() { _, _ = pg.Psql(ctx, "SELECT pg_sleep(60)") })
	}
	s := &slowScanner{threshold: time.Hour, read: connReader{}.read, procRoot: "/proc", backends: map[int]*backendState{}, report: func(uint32, backendTitle, time.Time, time.Duration) {}}
	servers := map[uint32]bool{uint32(pg.Pid()): true}
	deadline := time.Now().Add(time.Minute)
	for n := 0; n < busy; {
		s.scan(time.Now(), servers)
		n = 0
		for _, st := range s.backends {
			if st.busy {
				n++
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d busy backends seen, want %d", n, busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.ResetTimer()
	for b.Loop() {
		s.scan(time.Now(), servers)
	}
}

func TestMonotonicToWall(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	got := monotonicToWall(uint64(ts.Nano()-int64(2*time.Second)), now)
	if d := now.Add(-2 * time.Second).Sub(got); d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("2 s ago on the monotonic clock is %v, %v from now-2s", got, d)
	}
}
