package patronilab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPatroniConfig(t *testing.T) {
	o := Options{Tags: map[string]map[string]any{"pg1": {"nofailover": true}}}
	o.setDefaults()
	c := &Cluster{opts: o, apiUser: "patroni", apiPass: "p", superPW: "s"}
	m := Member{Name: "pg1", PGPort: 6001, APIPort: 7001, Dir: "/x/pg1", DataDir: "/x/pg1/data"}
	b, err := json.Marshal(c.patroniConfig(m, 2379))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Scope     string
		Name      string
		Restapi   struct{ Listen string }
		Etcd3     struct{ Hosts []string }
		Tags      map[string]any
		Bootstrap struct {
			DCS struct {
				TTL          int `json:"ttl"`
				LoopWait     int `json:"loop_wait"`
				RetryTimeout int `json:"retry_timeout"`
			}
		}
		Postgresql struct {
			Listen  string
			DataDir string `json:"data_dir"`
			BinDir  string `json:"bin_dir"`
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	d := got.Bootstrap.DCS
	if got.Scope != "mciv-lab" || got.Name != "pg1" || got.Restapi.Listen != "127.0.0.1:7001" ||
		got.Etcd3.Hosts[0] != "127.0.0.1:2379" || got.Postgresql.Listen != "127.0.0.1:6001" ||
		got.Postgresql.DataDir != "/x/pg1/data" || got.Postgresql.BinDir != "/usr/lib/postgresql/15/bin" ||
		got.Tags["nofailover"] != true {
		t.Fatalf("config = %s", b)
	}
	if d.TTL != 10 || d.LoopWait != 1 || d.LoopWait+2*d.RetryTimeout > d.TTL {
		t.Fatalf("timings ttl=%d loop_wait=%d retry_timeout=%d break loop_wait+2*retry_timeout <= ttl", d.TTL, d.LoopWait, d.RetryTimeout)
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ps, err := freePorts(8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ps {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v", ps)
		}
		seen[p] = true
	}
}

func TestPostmasterPID(t *testing.T) {
	dir := t.TempDir()
	if _, err := postmasterPID(dir); err == nil {
		t.Fatal("no pid file accepted")
	}
	pid := os.Getpid()
	content := strings.Join([]string{itoa(pid), dir, "1700000000", "5432"}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := postmasterPID(dir)
	if err != nil || got != pid {
		t.Fatalf("postmasterPID = %d, %v; want %d", got, err, pid)
	}
	if !alive(pid) {
		t.Fatal("this process is not alive")
	}
	if alive(1 << 30) {
		t.Fatal("a pid that cannot exist is alive")
	}
	if err := signalGroup(1, 0); err == nil {
		t.Fatal("signalGroup(1) accepted")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
