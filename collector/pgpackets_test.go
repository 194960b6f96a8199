package collector

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/lab/pglab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

// serverCgroup creates a cgroup v2 of its own for a test's server,
// removed when the test ends.
func serverCgroup(t testing.TB) string {
	t.Helper()
	root := newCgroupNames("/proc/self/mountinfo").roots[cgroupSockets]
	if root == "" {
		testenv.Missing(t, "no cgroup v2 hierarchy mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")
	}
	dir, _ := testCgroup(t, root)
	return dir
}

// startPGIn starts a throwaway PostgreSQL in cgroup dir.
func startPGIn(t *testing.T, dir string) *pglab.Server {
	t.Helper()
	testenv.RequireFile(t, pglab.DefaultBinDir+"/postgres", "Debian's postgresql-15 (scripts/deps.sh installs it)")
	testenv.RequireCommand(t, "psql", "pgbench")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pglab.Start(ctx, pglab.Options{Cgroup: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// queryPath returns the query latency row of instance, waiting up to
// 30 s for one.
func (r *running) queryPath(t *testing.T, instance string) HookStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, h := range r.c.Hooks() {
			if h.Name == queryPathHook(instance) {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no query latency row for %s: %+v", instance, r.c.Hooks())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresQueryLatencyPackets runs a real PostgreSQL in a cgroup of
// its own: the default collector measures it through its packets
// (cgroup_skb), with the socket tracepoints detached, and must publish
// the same latency histograms (both protocols), the slow query's
// normalised text, and count only queries (not setup exchanges, not the
// replication connection).
func TestPostgresQueryLatencyPackets(t *testing.T) {
	requireKernel(t)
	pg := startPGIn(t, serverCgroup(t))
	r := runKernelCollectorFor(t, Config{PostgresDiscoveryInterval: 200 * time.Millisecond}, only("dbsock"), pg.Pid())
	r.waitDBScan(t)
	row := r.queryPath(t, pg.Instance())
	t.Logf("query latency row: %+v", row)
	if row.Type != QueryPathPackets {
		t.Fatalf("query latency of a server in its own cgroup: %+v, want %q", row, QueryPathPackets)
	}
	r.c.mu.Lock()
	p := r.c.attached
	r.c.mu.Unlock()
	if !p.isParked(bpf0SockRecv) {
		t.Errorf("the socket tracepoints are attached while every server is measured through its packets")
	}
	checkQueryLatency(t, pg, r)
	checkOnlyQueriesCount(t, pg, r)
}

// TestPostgresQueryLatencyPacketsFallback runs PostgreSQL in the root
// cgroup, where packet programs would see every socket of the host: the
// collector must say so and measure through the socket tracepoints.
func TestPostgresQueryLatencyPacketsFallback(t *testing.T) {
	requireKernel(t)
	if cg := cgroupV2Of("/proc", os.Getpid()); cg != "/" {
		testenv.Missing(t, "this test runs in cgroup "+cg+", not the root: its server would not be in the root either")
	}
	pg := startPG(t)
	r := runKernelCollectorFor(t, Config{PostgresDiscoveryInterval: 200 * time.Millisecond}, only("dbsock"), pg.Pid())
	r.waitDBScan(t)
	row := r.queryPath(t, pg.Instance())
	t.Logf("query latency row: %+v", row)
	if row.Type != QueryPathSocketTracepoints || !strings.Contains(row.Note, "root cgroup") {
		t.Fatalf("query latency of a server in the root cgroup: %+v, want %q with the reason", row, QueryPathSocketTracepoints)
	}
	checkQueryLatency(t, pg, r)
}

// bpf0SockRecv is one of the parked socket tracepoint programs.
var bpf0SockRecv = socketTracepointPrograms[0]

// TestPostgresQueryLatencyPacketsUnixClients: a server measured through
// its packets that also has Unix-socket clients (which have no packets)
// gets the socket tracepoints for those, while its TCP connections are
// still counted once.
func TestPostgresQueryLatencyPacketsUnixClients(t *testing.T) {
	requireKernel(t)
	pg := startPGIn(t, serverCgroup(t))
	r := runKernelCollectorFor(t, Config{PostgresDiscoveryInterval: 200 * time.Millisecond}, only("dbsock"), pg.Pid())
	r.waitDBScan(t)
	// A Unix-socket client that stays connected while the test runs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold := exec.CommandContext(ctx, "psql", "-h", pg.SocketDir(), "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", "postgres", "-X", "-c", "SELECT pg_sleep(600)")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = hold.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		row := r.queryPath(t, pg.Instance())
		if row.Type == QueryPathPackets && strings.Contains(row.Note, "Unix-socket connections") {
			t.Logf("query latency row: %+v", row)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a Unix-socket client did not show in the query latency row: %+v", row)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.c.mu.Lock()
	p := r.c.attached
	r.c.mu.Unlock()
	if p.isParked(bpf0SockRecv) {
		t.Fatal("the socket tracepoints are still detached with a Unix-socket client connected")
	}
	// The Unix-socket queries first: then the TCP ones, through the
	// packets, must still be counted once each, with the tracepoints on.
	checkUnixSocket(t, pg, r)
	checkOnlyQueriesCount(t, pg, r)
}

// TestPostgresPacketsConnectionBeforeCollector: a connection (a pooled
// one, say) made before the collector started has no startup message to
// see; its later queries must be measured all the same, with their text.
func TestPostgresPacketsConnectionBeforeCollector(t *testing.T) {
	requireKernel(t)
	pg := startPGIn(t, serverCgroup(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := dialPG(ctx, pg.Port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.query("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	r := runKernelCollectorFor(t, Config{PostgresDiscoveryInterval: 200 * time.Millisecond}, only("dbsock"), pg.Pid())
	r.waitDBScan(t)
	if row := r.queryPath(t, pg.Instance()); row.Type != QueryPathPackets {
		t.Fatalf("query latency row %+v, want %s", row, QueryPathPackets)
	}
	const n = 5
	var seen []float64 // seconds each query took, seen by the client
	for range n {
		start := time.Now()
		if err := conn.query("SELECT pg_sleep(0.02)"); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, time.Since(start).Seconds())
	}
	if err := conn.query("SELECT pg_sleep(0.11) WHERE 'early' = 'early'"); err != nil {
		t.Fatal(err)
	}
	key := pgQueryKey(pg, "simple")
	sum := r.collect(t, 20*time.Second, func(sum map[string]*wire.Series) bool {
		return sum[key] != nil && sum[key].Hist.Count >= n+1
	})
	// pg_sleep sleeps at least its time, and the server's part of a
	// query is within what the client sees (a loaded machine adds to
	// both).
	slices.Sort(seen)
	if p50 := histo.Quantile(sum[key].Hist, 0.5); p50 < 0.0195 || p50 > seen[n-1]*1.01 {
		t.Errorf("p50 %.4f s, want from 20 ms to the client's slowest, %.4f s", p50, seen[n-1])
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-r.events:
			if e.Kind == eventKindSlowQuery && strings.Contains(e.Text, "WHERE $") {
				if strings.Contains(e.Text, "early") || e.Value < 0.11 {
					t.Errorf("slow query %+v", e)
				}
				return
			}
		case <-deadline:
			t.Fatal("no slow query event from the connection made before the collector")
		}
	}
}

func TestPacketCgroup(t *testing.T) {
	proc, v2 := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(v2+"/system.slice/postgresql.service", 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(pid, content string) {
		if err := os.MkdirAll(proc+"/"+pid, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(proc+"/"+pid+"/cgroup", []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10", "4:memory:/x\n0::/system.slice/postgresql.service\n")
	write("11", "1:name=systemd:/\n0::/\n")
	write("12", "4:memory:/x\n") // no unified hierarchy line
	write("13", "0::/gone.service\n")
	if dir, err := packetCgroup(proc, v2, 10); err != nil || dir != v2+"/system.slice/postgresql.service" {
		t.Errorf("own cgroup: %q, %v", dir, err)
	}
	if _, err := packetCgroup(proc, v2, 11); !errors.Is(err, errRootCgroup) {
		t.Errorf("root cgroup: %v, want errRootCgroup", err)
	}
	for _, pid := range []int{12, 13, 14} {
		if dir, err := packetCgroup(proc, v2, pid); err == nil {
			t.Errorf("pid %d: %q, want an error", pid, dir)
		}
	}
	if _, err := packetCgroup(proc, "", 10); err == nil {
		t.Error("no cgroup v2 mounted: want an error")
	}
}
