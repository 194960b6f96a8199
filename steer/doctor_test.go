package steer

import (
	"os"
	"strconv"
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
