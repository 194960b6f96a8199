package collector

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/pglab"
	"github.com/mciv/mciv/internal/testenv"
	"github.com/mciv/mciv/internal/wire"
)

// startPG starts a throwaway PostgreSQL for a test.
func startPG(t *testing.T) *pglab.Server {
	t.Helper()
	testenv.RequireFile(t, pglab.DefaultBinDir+"/postgres", "Debian's postgresql-15 (scripts/deps.sh installs it)")
	testenv.RequireCommand(t, "psql", "pgbench")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pglab.Start(ctx, pglab.Options{})
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

// TestPostgresQueryLatency runs pg_sleep(0.05) over the simple and the
// extended protocol against a real PostgreSQL 15 and checks the published
// db_query_seconds: both protocols, p50 within 5 % of 50 ms; and that a
// slow query with literals becomes a db_slow_query event without them.
func TestPostgresQueryLatency(t *testing.T) {
	requireKernel(t)
	pg := startPG(t)
	r := runKernelCollector(t, Config{PostgresDiscoveryInterval: 200 * time.Millisecond}, only("postgresql"))
	r.requireAttached(t, pgHookName("query__start"), pgHookName("query__execute__done"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 20
	for _, p := range []pglab.Protocol{pglab.Simple, pglab.Extended} {
		if out, err := pg.Pgbench(ctx, "SELECT pg_sleep(0.05);", n, p); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	if _, err := pg.Psql(ctx, "SELECT pg_sleep(0.15), t.* FROM (VALUES (42, 'bob')) AS t(id, name) WHERE id = 42 AND name = 'bob'"); err != nil {
		t.Fatal(err)
	}

	key := func(protocol string) string {
		return "db_query_seconds{instance=" + pg.Instance() + ",protocol=" + protocol + ",}"
	}
	sum := r.collect(t, 30*time.Second, func(sum map[string]*wire.Series) bool {
		s, e := sum[key("simple")], sum[key("extended")]
		return s != nil && e != nil && s.Hist.Count >= n+1 && e.Hist.Count >= n
	})
	for _, protocol := range []string{"simple", "extended"} {
		h := sum[key(protocol)].Hist
		p50 := histo.Quantile(h, 0.5)
		t.Logf("%s: count %d, p50 %.4f s, mean %.4f s", protocol, h.Count, p50, h.Sum/float64(h.Count))
		if math.Abs(p50-0.05)/0.05 > 0.05 {
			t.Errorf("%s: p50 %.4f s, want 50 ms ± 5%%", protocol, p50)
		}
	}

	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-r.events:
			if e.Kind != eventKindSlowQuery || !strings.Contains(e.Text, "VALUES") {
				continue
			}
			t.Logf("slow query event: %+v", e)
			if e.Labels["instance"] != pg.Instance() || e.Labels["protocol"] != "simple" || e.Value < 0.15 {
				t.Errorf("event %+v", e)
			}
			for _, lit := range []string{"42", "bob", "0.15", "'"} {
				if strings.Contains(e.Text, lit) {
					t.Errorf("literal %q in the event text %q", lit, e.Text)
				}
			}
			if !strings.Contains(e.Text, "WHERE id = $") {
				t.Errorf("event text %q", e.Text)
			}
			return
		case <-deadline:
			t.Fatal("no db_slow_query event for the query with literals")
		}
	}
}

// TestPostgresStartedLater starts PostgreSQL after the collector: the
// periodic discovery must name the new instance, and its queries must be
// measured under it.
func TestPostgresStartedLater(t *testing.T) {
	requireKernel(t)
	r := runKernelCollector(t, Config{PostgresDiscoveryInterval: 100 * time.Millisecond}, only("postgresql"))
	pg := startPG(t)
	deadline := time.Now().Add(30 * time.Second)
	for r.c.names.instances.name(uint32(pg.Pid())) != pg.Instance() {
		if time.Now().After(deadline) {
			t.Fatalf("instance %s not discovered within 30s", pg.Instance())
		}
		time.Sleep(50 * time.Millisecond) // polling, not an assertion
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pg.Psql(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	r.collect(t, 20*time.Second, func(sum map[string]*wire.Series) bool {
		s := sum["db_query_seconds{instance="+pg.Instance()+",protocol=simple,}"]
		return s != nil && s.Hist.Count >= 1
	})
}
