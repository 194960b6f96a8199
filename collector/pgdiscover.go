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

// pgScan is what one look at the host found.
type pgScan struct {
	binaries    binarySet
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
	for _, g := range installed {
		paths, _ := filepath.Glob(g)
		for _, p := range paths {
			s.binaries.add(p)
		}
	}
	isPG := make(map[int]int) // pid -> ppid, postgres processes only
	eachProcess(procRoot, []string{"postgres", "postmaster"}, func(pid int, dir string, ppid int) {
		isPG[pid] = ppid
		s.binaries.add(filepath.Join(dir, "exe"))
	})
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
