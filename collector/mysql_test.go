package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/lab/mylab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

func TestDispatchCookie(t *testing.T) {
	c, err := dispatchCookie("_Z16dispatch_command19enum_server_commandP3THDPcjb", "amd64")
	if err != nil || c != 14|12<<8|11<<16 {
		t.Errorf("MariaDB amd64: %#x %v", c, err)
	}
	c, err = dispatchCookie("_Z16dispatch_command19enum_server_commandP3THDPcjb", "arm64")
	if err != nil || c != 0|2<<8|3<<16 {
		t.Errorf("MariaDB arm64: %#x %v", c, err)
	}
	c, err = dispatchCookie("_Z16dispatch_commandP3THDPK8COM_DATA19enum_server_command", "amd64")
	if err != nil || c != 12|argNone<<8|argNone<<16 {
		t.Errorf("MySQL amd64: %#x %v", c, err)
	}
	if _, err := dispatchCookie("_Z16dispatch_commandv", "amd64"); err == nil {
		t.Error("unknown signature accepted")
	}
}

func TestMySQLPort(t *testing.T) {
	for cmdline, want := range map[string]int{
		"mariadbd\x00--port=3307\x00":        3307,
		"mysqld\x00-P\x003308\x00":           3308,
		"mysqld\x00-P3309\x00":               3309,
		"mysqld\x00--datadir=/x\x00":         3306,
		"mysqld\x00--port\x003310\x00-x\x00": 3310,
	} {
		dir := t.TempDir()
		writeFile(t, dir+"/cmdline", cmdline)
		if got := mysqlPort(dir); got != want {
			t.Errorf("%q: %d, want %d", cmdline, got, want)
		}
	}
}

// TestMariaDBQueryLatency runs SELECT SLEEP(0.05) against a real MariaDB
// and checks db_query_seconds (p50 from 50 ms to a quarter more: checkSleepP50) and a slow query
// event without literals.
func TestMariaDBQueryLatency(t *testing.T) {
	requireKernel(t)
	testenv.RequireFile(t, mylab.DefaultServer, "Debian's mariadb-server (scripts/deps.sh installs it)")
	testenv.RequireCommand(t, mylab.DefaultInstallDB, mylab.DefaultClient)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	my, err := mylab.Start(ctx, mylab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer my.Stop()
	r := runKernelCollector(t, Config{PostgresDiscoveryInterval: 200 * time.Millisecond}, only("mysql"))
	r.requireAttached(t, mysqlHookEnter, mysqlHookReturn)

	const n = 20
	if _, err := my.Query(ctx, strings.Repeat("SELECT SLEEP(0.05);", n)); err != nil {
		t.Fatal(err)
	}
	if _, err := my.Query(ctx, "SELECT SLEEP(0.15), t.* FROM (SELECT 42 AS id, 'bob' AS name) AS t WHERE id = 42 AND name = 'bob'"); err != nil {
		t.Fatal(err)
	}
	key := "db_query_seconds{instance=" + my.Instance() + ",protocol=simple,}"
	sum := r.collect(t, 30*time.Second, func(sum map[string]*wire.Series) bool {
		s := sum[key]
		return s != nil && s.Hist.Count >= n+1
	})
	h := sum[key].Hist
	p50 := histo.Quantile(h, 0.5)
	t.Logf("count %d, p50 %.4f s", h.Count, p50)
	checkSleepP50(t, "MySQL", p50, 0.05)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-r.events:
			if e.Kind != eventKindSlowQuery || !strings.Contains(e.Text, "name") {
				continue
			}
			t.Logf("slow query event: %+v", e)
			if e.Labels["instance"] != my.Instance() || e.Value < 0.15 {
				t.Errorf("event %+v", e)
			}
			for _, lit := range []string{"42", "bob", "0.15", "'"} {
				if strings.Contains(e.Text, lit) {
					t.Errorf("literal %q in the event text %q", lit, e.Text)
				}
			}
			return
		case <-deadline:
			t.Fatal("no db_slow_query event for the query with literals")
		}
	}
}
