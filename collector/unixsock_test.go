package collector

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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
	// No client yet; then one connected through the socket file, and
	// one over TCP (not counted).
	if _, n, err := unixSockets("/proc", pg.Pid()); err != nil || n != 0 {
		t.Errorf("connections with no client: %d, %v", n, err)
	}
	for _, conn := range []string{"host=" + pg.SocketDir(), "host=127.0.0.1"} {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		hold := exec.CommandContext(ctx, "psql", conn+" port="+strconv.Itoa(pg.Port)+" user=postgres dbname=postgres", "-X", "-c", "SELECT pg_sleep(60)")
		if err := hold.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = hold.Wait() }()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, n, err := unixSockets("/proc", pg.Pid())
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) || n > 1 {
			t.Fatalf("Unix-socket connections with one Unix and one TCP client: %d, %v", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A process with no listening Unix socket: none.
	if keys, err := unixListeners("/proc", 1<<22); err == nil || len(keys) != 0 {
		t.Errorf("a pid no process has: %v %v", keys, err)
	}
}
