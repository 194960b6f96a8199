package collector

import (
	"os"
	"path/filepath"
	"testing"
)

func TestScanPostgresFakeProc(t *testing.T) {
	proc := t.TempDir()
	exe := filepath.Join(t.TempDir(), "postgres")
	writeFile(t, exe, "not really")
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "postmaster.pid"), "100\n/var/lib/pg\n1700000000\n5433\n/run/postgresql\n")
	mk := func(pid, stat string) string {
		d := filepath.Join(proc, pid)
		writeFile(t, filepath.Join(d, "stat"), stat)
		if err := os.Symlink(exe, filepath.Join(d, "exe")); err != nil {
			t.Fatal(err)
		}
		return d
	}
	pm := mk("100", "100 (postgres) S 1 100 100 0")
	if err := os.Symlink(data, filepath.Join(pm, "cwd")); err != nil {
		t.Fatal(err)
	}
	mk("101", "101 (postgres) S 100 100 100 0")            // a backend
	other := mk("200", "200 (post gres) x) S 1 200 200 0") // not postgres
	writeFile(t, filepath.Join(other, "cmdline"), "x\x00")
	pm2 := mk("300", "300 (postmaster) S 1 300 300 0") // no postmaster.pid
	writeFile(t, filepath.Join(pm2, "cmdline"), "postgres\x00-D\x00/x\x00-p\x006000\x00")

	s := scanPostgres(proc, nil)
	if len(s.binaries.list) != 1 {
		t.Errorf("binaries %+v", s.binaries.list)
	}
	if len(s.postmasters) != 2 || s.postmasters[100] != 5433 || s.postmasters[300] != 6000 {
		t.Errorf("postmasters %v", s.postmasters)
	}
}
