package collector

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mciv/mciv/bpf"
)

// unixAcceptCon is the __SO_ACCEPTCON flag of /proc/net/unix: a listening
// socket.
const unixAcceptCon = 0x10000

// unixListeners returns the files of the Unix sockets process pid (under
// procRoot) listens on, such as PostgreSQL's /var/run/postgresql/.s.PGSQL.5432,
// as the kernel identifies them: the file's inode and its file system's
// device. Abstract and unnamed sockets have no file and are left out.
func unixListeners(procRoot string, pid int) ([]bpf.DBSockDbUnixKey, error) {
	keys, _, err := unixSockets(procRoot, pid)
	return keys, err
}

// unixStateConnected is the St column of a connected stream socket in
// /proc/net/unix (SS_CONNECTED).
const unixStateConnected = "03"

// unixSockets returns what unixListeners does, and how many connections
// to those files are open (the server's ends of them: an accepted socket
// shows its listener's path).
func unixSockets(procRoot string, pid int) ([]bpf.DBSockDbUnixKey, int, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, 0, fmt.Errorf("list the sockets of pid %d: %w", pid, err)
	}
	mine := make(map[string]bool) // socket inodes of pid
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := strings.CutPrefix(target, "socket:["); ok {
			mine[strings.TrimSuffix(ino, "]")] = true
		}
	}
	f, err := os.Open(filepath.Join(dir, "net", "unix"))
	if err != nil {
		return nil, 0, fmt.Errorf("unix sockets of pid %d: %w", pid, err)
	}
	defer f.Close()
	var keys []bpf.DBSockDbUnixKey
	listening := make(map[string]bool) // paths
	connected := make(map[string]int)  // by path
	sc := bufio.NewScanner(f)
	sc.Scan() // header: Num RefCount Protocol Flags Type St Inode Path
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || strings.HasPrefix(fields[7], "@") {
			continue
		}
		flags, err := strconv.ParseUint(fields[3], 16, 32)
		if err == nil && flags&unixAcceptCon == 0 && fields[5] == unixStateConnected {
			connected[fields[7]]++
		}
		if !mine[fields[6]] || err != nil || flags&unixAcceptCon == 0 {
			continue
		}
		listening[fields[7]] = true
		// The path as the server sees it: under its root directory.
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, "root", fields[7]), &st); err != nil {
			continue // removed, or not reachable
		}
		keys = append(keys, bpf.DBSockDbUnixKey{
			Ino: st.Ino,
			Dev: uint32(unix.Major(st.Dev))<<20 | uint32(unix.Minor(st.Dev)),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("read the unix sockets of pid %d: %w", pid, err)
	}
	n := 0
	for path := range listening {
		n += connected[path]
	}
	return keys, n, nil
}
