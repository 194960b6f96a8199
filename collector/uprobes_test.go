package collector

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cilium/ebpf/link"
)

func TestBinarySetOnceByInode(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	if err := os.WriteFile(a, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(a, filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	var s binarySet
	s.add(a)
	s.add(filepath.Join(dir, "b")) // the same inode
	s.add(filepath.Join(dir, "missing"))
	if len(s.list) != 1 || s.list[0].path != a {
		t.Fatalf("set %+v, want only %s", s.list, a)
	}
}

func TestEachProcessFindsThisOne(t *testing.T) {
	comm, _, err := procStat("/proc/self/stat")
	if err != nil {
		t.Skip("no /proc: " + err.Error())
	}
	found := false
	eachProcess("/proc", []string{comm}, func(pid int, dir string, _ int) {
		if pid == os.Getpid() && dir == "/proc/"+strconv.Itoa(pid) {
			found = true
		}
	})
	if !found {
		t.Fatalf("eachProcess did not find this process (%s)", comm)
	}
}

// TestBinaryAttacherRows: a binary is attached once, a failed one is not
// tried again, and the rows say why nothing is attached.
func TestBinaryAttacherRows(t *testing.T) {
	calls := 0
	a := newBinaryAttacher([]HookStatus{{Name: "x:one", Type: HookTypeUprobe}}, "none found")
	a.attachBinary = func(path string) ([]link.Link, error) {
		calls++
		if path == "bad" {
			return nil, errors.New("cannot attach bad")
		}
		return nil, nil
	}
	if rows := a.statuses(); rows[0].Attached || rows[0].Error != "none found" {
		t.Fatalf("before: %+v", rows)
	}
	bad := serverBinary{id: fileID{1, 1}, path: "bad"}
	if ok, err := a.attach(bad); ok || err == nil {
		t.Fatalf("bad: %v %v", ok, err)
	}
	if _, err := a.attach(bad); err != nil || calls != 1 {
		t.Fatalf("a failed binary was tried again (calls %d, err %v)", calls, err)
	}
	if rows := a.statuses(); rows[0].Attached || rows[0].Error != "cannot attach bad" {
		t.Fatalf("after failure: %+v", rows)
	}
	good := serverBinary{id: fileID{1, 2}, path: "good"}
	if ok, err := a.attach(good); !ok || err != nil {
		t.Fatalf("good: %v %v", ok, err)
	}
	if ok, _ := a.attach(good); ok || calls != 2 {
		t.Fatalf("attached twice (calls %d)", calls)
	}
	if rows := a.statuses(); !rows[0].Attached || rows[0].Error != "" {
		t.Fatalf("after attach: %+v", rows)
	}
	a.close()
}
