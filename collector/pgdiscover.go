package collector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// fileID identifies an executable by device and inode: uprobes attach to
// an inode, whatever path or mount namespace names it.
type fileID struct{ dev, ino uint64 }

// pgBinary is one PostgreSQL server executable.
type pgBinary struct {
	id   fileID
	path string // a path that opens it from here, e.g. /proc/PID/exe
}

// pgScan is what one look at the host found.
type pgScan struct {
	binaries    []pgBinary
	postmasters map[int]int // pid -> port
}

// installedPostgres are the globs where distributions install the server.
var installedPostgres = []string{
	"/usr/lib/postgresql/*/bin/postgres", // Debian, Ubuntu
	"/usr/pgsql-*/bin/postgres",          // PGDG RPMs
}

// scanPostgres finds PostgreSQL server binaries (installed ones, and those
// of running processes under procRoot) and the running postmasters with
// their ports.
func scanPostgres(procRoot string, installed []string) pgScan {
	s := pgScan{postmasters: make(map[int]int)}
	seen := make(map[fileID]bool)
	add := func(path string) {
		id, err := idOf(path)
		if err != nil || seen[id] {
			return
		}
		seen[id] = true
		s.binaries = append(s.binaries, pgBinary{id: id, path: path})
	}
	for _, g := range installed {
		paths, _ := filepath.Glob(g)
		for _, p := range paths {
			add(p)
		}
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return s
	}
	isPG := make(map[int]int) // pid -> ppid, postgres processes only
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, ppid, err := procStat(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil || (comm != "postgres" && comm != "postmaster") {
			continue
		}
		isPG[pid] = ppid
		add(filepath.Join(procRoot, e.Name(), "exe"))
	}
	for pid, ppid := range isPG {
		if _, child := isPG[ppid]; child {
			continue
		}
		s.postmasters[pid] = postmasterPort(filepath.Join(procRoot, strconv.Itoa(pid)))
	}
	return s
}

func idOf(path string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: st.Dev, ino: st.Ino}, nil
}

// procStat reads the command name and parent pid from /proc/PID/stat.
func procStat(path string) (comm string, ppid int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return "", 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(b[close+1:]))
	if len(fields) < 2 {
		return "", 0, errors.New("malformed stat")
	}
	ppid, err = strconv.Atoi(fields[1])
	return string(b[open+1 : close]), ppid, err
}

// postmasterPort finds the port of the postmaster whose /proc directory is
// dir: line 4 of postmaster.pid in its data directory (its working
// directory), else the -p option, else the default 5432.
func postmasterPort(dir string) int {
	if f, err := os.Open(filepath.Join(dir, "cwd", "postmaster.pid")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for i := 1; sc.Scan(); i++ {
			if i == 4 {
				if p, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && p > 0 {
					return p
				}
				break
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for i, a := range args {
			if a == "-p" && i+1 < len(args) {
				if p, err := strconv.Atoi(args[i+1]); err == nil {
					return p
				}
			}
			if v, ok := strings.CutPrefix(a, "-p"); ok && v != "" {
				if p, err := strconv.Atoi(v); err == nil {
					return p
				}
			}
		}
	}
	return 5432
}

// pgInstance is the instance label of a postmaster's port.
func pgInstance(port int) string { return fmt.Sprintf("postgres:%d", port) }
