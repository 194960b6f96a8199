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
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return nil, fmt.Errorf("list the sockets of pid %d: %w", pid, err)
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
		return nil, fmt.Errorf("unix sockets of pid %d: %w", pid, err)
	}
	defer f.Close()
	var keys []bpf.DBSockDbUnixKey
	sc := bufio.NewScanner(f)
	sc.Scan() // header: Num RefCount Protocol Flags Type St Inode Path
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || !mine[fields[6]] || strings.HasPrefix(fields[7], "@") {
			continue
		}
		flags, err := strconv.ParseUint(fields[3], 16, 32)
		if err != nil || flags&unixAcceptCon == 0 {
			continue
		}
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
		return nil, fmt.Errorf("read the unix sockets of pid %d: %w", pid, err)
	}
	return keys, nil
}
