// Package pglab starts throwaway PostgreSQL servers for tests: a fresh
// cluster (initdb) in a temporary directory, owned by the postgres OS
// user, listening on a free port of 127.0.0.1 with trust authentication,
// removed again by Stop. Queries run through psql (simple protocol) or
// pgbench (simple, extended or prepared protocol).
package pglab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mciv/mciv/internal/lab/labproc"
)

// DefaultBinDir is where Debian's postgresql-15 installs the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Options configure Start. The zero value is usable.
type Options struct {
	// BinDir holds initdb and postgres; "" means DefaultBinDir.
	BinDir string
	// OSUser runs the server; "" means "postgres". PostgreSQL refuses to
	// run as root.
	OSUser string
	// Settings are extra server settings (name -> value), e.g.
	// shared_buffers.
	Settings map[string]string
	// Cgroup, if set, is the directory of a cgroup v2 the server starts
	// in (its sockets belong to that cgroup), as systemd starts a service.
	Cgroup string
}

// Server is a running throwaway PostgreSQL server.
type Server struct {
	// Dir is the data directory.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Binary is the postgres executable.
	Binary string

	root string // temporary directory holding Dir, and the Unix socket
	host string // what psql and pgbench connect to: "" for 127.0.0.1
	// clientCgroup: the cgroup v2 directory pgbench starts in, "" the
	// caller's.
	clientCgroup string
	proc         *labproc.Process
	cred         *syscall.Credential
}

// SocketDir is the directory of the server's Unix socket.
func (s *Server) SocketDir() string { return s.root }

// OverUnix returns a view of the server whose Psql and Pgbench connect
// through its Unix socket instead of TCP. Stop the server, not the view.
func (s *Server) OverUnix() *Server {
	u := *s
	u.host = s.root
	return &u
}

// ClientsIn returns a view of the server whose pgbench runs start in the
// cgroup v2 directory dir (to measure the clients' CPU). Stop the server,
// not the view.
func (s *Server) ClientsIn(dir string) *Server {
	u := *s
	u.clientCgroup = dir
	return &u
}

// pgbenchCommand is pgbench with args, in the clients' cgroup if any; the
// returned function releases what it opened, after the command started.
func (s *Server) pgbenchCommand(ctx context.Context, args ...string) (*exec.Cmd, func(), error) {
	cmd := exec.CommandContext(ctx, "pgbench", args...)
	if s.clientCgroup == "" {
		return cmd, func() {}, nil
	}
	cg, err := os.Open(s.clientCgroup)
	if err != nil {
		return nil, nil, fmt.Errorf("pgbench cgroup: %w", err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	return cmd, func() { cg.Close() }, nil
}

// Start creates a cluster and starts a server on it, waiting until it
// accepts connections or ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.BinDir == "" {
		opts.BinDir = DefaultBinDir
	}
	if opts.OSUser == "" {
		opts.OSUser = "postgres"
	}
	u, err := user.Lookup(opts.OSUser)
	if err != nil {
		return nil, fmt.Errorf("pglab: OS user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}

	root, err := os.MkdirTemp("", "mciv-pglab-")
	if err != nil {
		return nil, fmt.Errorf("pglab: %w", err)
	}
	s := &Server{root: root, Dir: filepath.Join(root, "data"), Binary: filepath.Join(opts.BinDir, "postgres"), cred: cred}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(root)
		return nil, err
	}
	if err := os.Chown(root, uid, gid); err != nil {
		return fail(fmt.Errorf("pglab: %w", err))
	}
	initdb := exec.CommandContext(ctx, filepath.Join(opts.BinDir, "initdb"),
		"-D", s.Dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = root
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pglab: initdb: %w: %s", err, labproc.Tail(out)))
	}
	port, err := labproc.FreePort()
	if err != nil {
		return fail(err)
	}
	s.Port = port
	args := []string{"-D", s.Dir, "-p", strconv.Itoa(port), "-k", root,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "logging_collector=off"}
	for k, v := range opts.Settings {
		args = append(args, "-c", k+"="+v)
	}
	var log bytes.Buffer
	cmd := exec.Command(s.Binary, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if opts.Cgroup != "" {
		cg, err := os.Open(opts.Cgroup)
		if err != nil {
			return fail(fmt.Errorf("pglab: cgroup: %w", err))
		}
		defer cg.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(cg.Fd())
	}
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &log, &log
	if s.proc, err = labproc.Start(cmd); err != nil {
		return fail(fmt.Errorf("pglab: %w", err))
	}
	if err := s.proc.WaitReady(ctx, time.Minute, func(ctx context.Context) error {
		_, err := s.Psql(ctx, "SELECT 1")
		return err
	}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("pglab: %w; server log: %s", err, labproc.Tail(log.Bytes()))
	}
	return s, nil
}

// Pid is the postmaster's process id.
func (s *Server) Pid() int { return s.proc.Pid() }

// Instance is the instance label mciv gives this server.
func (s *Server) Instance() string { return "postgres:" + strconv.Itoa(s.Port) }

// connArgs are the psql/pgbench connection options.
func (s *Server) connArgs() []string {
	host := s.host
	if host == "" {
		host = "127.0.0.1"
	}
	return []string{"-h", host, "-p", strconv.Itoa(s.Port), "-U", "postgres"}
}

// Psql runs sql with psql -c (the simple query protocol) and returns its
// unaligned, tuples-only output.
func (s *Server) Psql(ctx context.Context, sql string) (string, error) {
	args := append(s.connArgs(), "-d", "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
	cmd := exec.CommandContext(ctx, "psql", args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql %q: %w: %s", sql, err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Protocol is a pgbench query mode.
type Protocol string

// pgbench query modes (pgbench -M).
const (
	Simple   Protocol = "simple"
	Extended Protocol = "extended"
	Prepared Protocol = "prepared"
)

// Pgbench runs a custom script (one or more SQL lines) transactions times
// on one connection with protocol, and returns pgbench's output.
func (s *Server) Pgbench(ctx context.Context, script string, transactions int, protocol Protocol) (string, error) {
	f, err := os.CreateTemp("", "mciv-pglab-*.sql")
	if err != nil {
		return "", fmt.Errorf("pgbench script: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(script + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("pgbench script: %w", err)
	}
	f.Close()
	args := append(s.connArgs(), "-n", "-M", string(protocol), "-t", strconv.Itoa(transactions), "-f", f.Name(), "postgres")
	return s.pgbench(ctx, args...)
}

// pgbench runs pgbench with args and returns its output.
func (s *Server) pgbench(ctx context.Context, args ...string) (string, error) {
	cmd, release, err := s.pgbenchCommand(ctx, args...)
	if err != nil {
		return "", err
	}
	defer release()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("pgbench %s: %w: %s", strings.Join(args, " "), err, labproc.Tail(out))
	}
	return string(out), nil
}

// Stop shuts the server down (fast shutdown, then a kill after 30 s)
// and removes its directory. It is safe to call twice.
func (s *Server) Stop() error {
	var errs []error
	if s.proc != nil {
		if err := s.proc.Stop(syscall.SIGINT, 30*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("pglab: %w", err))
		}
	}
	if err := os.RemoveAll(s.root); err != nil {
		errs = append(errs, fmt.Errorf("pglab: %w", err))
	}
	return errors.Join(errs...)
}
