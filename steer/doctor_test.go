package steer

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func TestDoctor(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := CgroupV2Mount(); err != nil {
		testenv.Missing(t, err.Error())
	}
	r := Doctor("")
	if r.Problem != "" || r.CgroupV2 == "" || len(r.Hooks) != 4 {
		t.Fatalf("%+v", r)
	}
	for _, h := range r.Hooks {
		if !h.Attached {
			t.Errorf("%+v", h)
		}
	}
	if _, err := os.Stat(r.CgroupV2 + "/mciv-doctor-" + strconv.Itoa(os.Getpid())); !os.IsNotExist(err) {
		t.Errorf("scratch cgroup left behind: %v", err)
	}
}

func TestDoctorMissingStatus(t *testing.T) {
	if _, err := ReadStatus(t.TempDir() + "/none.json"); err == nil {
		t.Fatal("want an error")
	}
}

// writeMountinfo writes a mountinfo file with the given filesystem lines.
func writeMountinfo(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDoctorWithoutCgroupV2: a host with only cgroup v1 gets a clear "no
// steering" message and a fix, and nothing is attached.
func TestDoctorWithoutCgroupV2(t *testing.T) {
	mi := writeMountinfo(t,
		"22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw",
		"25 22 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755",
		"26 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd",
		"27 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct")
	attached := false
	r := doctorOn(doctorHost{mountinfo: mi, euid: func() int { return 0 },
		attach: func(string) ([]Hook, error) { attached = true; return nil, nil }}, "")
	if !strings.HasPrefix(r.Problem, "no steering: cgroup v2 is not mounted") || !strings.Contains(r.Fix, "cgroup2") {
		t.Fatalf("problem %q fix %q", r.Problem, r.Fix)
	}
	if attached || r.CgroupV2 != "" || len(r.Hooks) != 0 {
		t.Fatalf("attached on a host without cgroup v2: %+v", r)
	}
}

// TestDoctorWithoutHooks: a kernel that refuses the steering program (no
// cgroup sock_addr hooks) gets a clear "no steering" message naming the
// kernel's error; a kernel without the IPv6 hooks gets a warning saying
// what is not steered.
func TestDoctorWithoutHooks(t *testing.T) {
	testenv.RequireRoot(t)
	mp, err := CgroupV2Mount()
	if err != nil {
		testenv.Missing(t, err.Error())
	}
	mi := writeMountinfo(t, "30 1 0:26 / "+mp+" rw,nosuid - cgroup2 cgroup2 rw")
	root := func() int { return 0 }
	refused := errors.New("steer: attach cgroup/connect4: program type not supported by this kernel: invalid argument")
	r := doctorOn(doctorHost{mountinfo: mi, euid: root, attach: func(dir string) ([]Hook, error) {
		if _, err := os.Stat(dir + "/cgroup.procs"); err != nil {
			t.Errorf("attach asked for %s, not a scratch cgroup: %v", dir, err)
		}
		return nil, refused
	}}, "")
	if !strings.HasPrefix(r.Problem, "no steering: ") || !strings.Contains(r.Problem, "cgroup/connect4") ||
		!strings.Contains(r.Problem, "unsteered") || !strings.Contains(r.Fix, "Linux 5.8") || len(r.Hooks) != 0 {
		t.Fatalf("%+v", r)
	}
	r = doctorOn(doctorHost{mountinfo: mi, euid: root, attach: func(string) ([]Hook, error) {
		return []Hook{{Name: "cgroup/connect4", Attached: true}, {Name: "cgroup/getpeername4", Attached: true},
			{Name: "cgroup/connect6", Error: "invalid argument"}, {Name: "cgroup/getpeername6", Error: "invalid argument"}}, nil
	}}, "")
	if r.Problem != "" || !strings.Contains(r.Warning, "IPv6 connects are not steered") || len(r.Hooks) != 4 {
		t.Fatalf("%+v", r)
	}
	// Not root: it says how to check, and attaches nothing.
	r = doctorOn(doctorHost{mountinfo: mi, euid: func() int { return 1000 }, attach: func(string) ([]Hook, error) {
		t.Error("attached without root")
		return nil, nil
	}}, "")
	if !strings.Contains(r.Problem, "not root") || !strings.Contains(r.Fix, "sudo") {
		t.Fatalf("%+v", r)
	}
}
