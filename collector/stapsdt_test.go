package collector

import (
	"testing"

	"github.com/mciv/mciv/internal/lab/testenv"
)

// debianPostgres is the binary of Debian's postgresql-15 package.
const debianPostgres = "/usr/lib/postgresql/15/bin/postgres"

// TestReadUSDTProbesPostgres reads the probes of Debian's PostgreSQL 15
// and checks the ones mciv uses against `readelf -n`.
func TestReadUSDTProbesPostgres(t *testing.T) {
	testenv.RequireFile(t, debianPostgres, "Debian's postgresql-15 (built with USDT probes)")
	ps, err := readUSDTProbes(debianPostgres)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]usdtProbe{}
	for _, p := range ps {
		if p.Provider != "postgresql" {
			t.Errorf("provider %q", p.Provider)
		}
		found[p.Name] = p
	}
	for _, name := range []string{"query__start", "query__done", "query__execute__start", "query__execute__done", "query__parse__start"} {
		p, ok := found[name]
		if !ok {
			t.Fatalf("probe %s missing among %d", name, len(ps))
		}
		if p.Semaphore == 0 || p.SemaphoreOffset == 0 || p.LocationOffset == 0 {
			t.Errorf("%s: %+v", name, p)
		}
	}
	if a := found["query__start"].Args; a == "" || a[:2] != "8@" {
		t.Errorf("query__start args %q", a)
	}
	if _, err := hostArgCookie(found["query__start"].Args); err != nil {
		t.Error(err)
	}
}

func TestReadUSDTProbesNone(t *testing.T) {
	if _, err := readUSDTProbes("/proc/self/exe"); err == nil {
		t.Error("a Go test binary has USDT probes?")
	}
}
