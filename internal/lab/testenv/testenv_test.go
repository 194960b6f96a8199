package testenv

import (
	"os"
	"syscall"
	"testing"
)

// recorder captures what Missing does without ending the real test.
type recorder struct {
	testing.TB
	fatal, skip bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.fatal = true }
func (r *recorder) Skipf(string, ...any)  { r.skip = true }

func TestMissingSkipsOrFails(t *testing.T) {
	t.Setenv("MCIV_NO_SKIP", "")
	r := &recorder{TB: t}
	Missing(r, "x")
	if !r.skip || r.fatal {
		t.Fatalf("without MCIV_NO_SKIP: skip=%v fatal=%v", r.skip, r.fatal)
	}
	t.Setenv("MCIV_NO_SKIP", "1")
	r = &recorder{TB: t}
	Missing(r, "x")
	if !r.fatal || r.skip {
		t.Fatalf("with MCIV_NO_SKIP=1: skip=%v fatal=%v", r.skip, r.fatal)
	}
}

func TestRequireCommand(t *testing.T) {
	t.Setenv("MCIV_NO_SKIP", "1")
	r := &recorder{TB: t}
	RequireCommand(r, "sh")
	if r.fatal {
		t.Fatal("sh reported missing")
	}
	RequireCommand(r, "no-such-command-mciv")
	if !r.fatal {
		t.Fatal("a missing command was not reported")
	}
}

func TestExclusiveKernelSerialises(t *testing.T) {
	RequireRoot(t)
	// flock locks belong to an open file: a second open, as another test
	// binary would make, must not get the lock while the first holds it.
	tryLock := func() error {
		f, err := os.OpenFile(kernelLockPath, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	t.Run("held", func(t *testing.T) {
		ExclusiveKernel(t)
		if err := tryLock(); err == nil {
			t.Fatal("a second holder got the lock while it was held")
		}
	})
	if err := tryLock(); err != nil {
		t.Fatalf("the lock was not released when the test ended: %v", err)
	}
}
