package collector

import (
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUnixListeners finds the file of a real PostgreSQL's Unix socket
// among the postmaster's sockets.
func TestUnixListeners(t *testing.T) {
	pg := startPG(t)
	keys, err := unixListeners("/proc", pg.Pid())
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(pg.SocketDir(), ".s.PGSQL."+strconv.Itoa(pg.Port)), &st); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Ino != st.Ino || keys[0].Dev != uint32(unix.Major(st.Dev))<<20|uint32(unix.Minor(st.Dev)) {
		t.Errorf("listeners %+v, want the socket file (inode %d, device %d:%d)", keys, st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	// A process with no listening Unix socket: none.
	if keys, err := unixListeners("/proc", 1<<22); err == nil || len(keys) != 0 {
		t.Errorf("a pid no process has: %v %v", keys, err)
	}
}
