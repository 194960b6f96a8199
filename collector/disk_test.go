package collector

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

// TestDiskIOEndToEnd writes with O_DIRECT and fdatasync to a file on a
// real disk and expects disk_io_seconds write samples for a named device:
// once with the collector's choice of hooks and once with the classic
// tracepoints.
func TestDiskIOEndToEnd(t *testing.T) {
	requireKernel(t)
	testenv.ExclusiveKernel(t)
	dir := blockDeviceDir(t)
	eachWay(t, "disk", func(t *testing.T, name string, edit func([]object) []object) {
		r := runKernelCollector(t, Config{}, edit)
		r.requireAttached(t, "block_rq_issue", "block_rq_complete")
		directWrites(t, filepath.Join(dir, name), 64)
		named := regexp.MustCompile(`^[a-z]`)
		sum := r.collect(t, 20*time.Second, func(sum map[string]*wire.Series) bool {
			for _, s := range sum {
				if s.Signal == signalDiskIO && s.Label("op") == "write" && named.MatchString(s.Label("device")) && s.Hist.Count >= 8 {
					return true
				}
			}
			return false
		})
		for k, s := range sum {
			if s.Signal == signalDiskIO {
				t.Logf("%s: count %d sum %.6fs", k, s.Hist.Count, s.Hist.Sum)
			}
		}
	})
}

// blockDeviceDir returns a directory (removed when the test ends) on a
// file system with a block device under it: writes there reach a disk.
func blockDeviceDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "mciv-disk-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.OVERLAYFS_SUPER_MAGIC {
		testenv.Missing(t, "/var/tmp is not on a block device")
	}
	return dir
}

// directWrites writes n 4 KiB blocks with O_DIRECT, each followed by
// fdatasync, so that each reaches the device.
func directWrites(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|unix.O_DIRECT, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // page aligned
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	for i := range n {
		buf[0] = byte(i)
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			t.Fatal(err)
		}
	}
}
