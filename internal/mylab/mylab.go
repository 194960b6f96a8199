// Package mylab starts throwaway MariaDB (or MySQL) servers for tests: a
// fresh data directory (mariadb-install-db) in a temporary directory, a
// server on a free port of 127.0.0.1 without grant checks, removed again
// by Stop. Queries run through the mariadb command-line client.
package mylab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults for Options.
const (
	DefaultServer    = "/usr/sbin/mariadbd"
	DefaultInstallDB = "mariadb-install-db"
	DefaultClient    = "mariadb"
)

// Options configure Start. The zero value is usable.
type Options struct {
	// Server, InstallDB and Client are the programs; "" means the
	// defaults of Debian's mariadb-server.
	Server, InstallDB, Client string
	// OSUser owns the data and runs the server; "" means "mysql".
	OSUser string
}

// Server is a running throwaway MariaDB server.
type Server struct {
	// Dir is the data directory.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Binary is the server executable.
	Binary string

	client string
	root   string
	cmd    *exec.Cmd
	done   chan error
}

// Start creates a data directory and starts a server on it, waiting until
// it answers a query or ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Server == "" {
		opts.Server = DefaultServer
	}
	if opts.InstallDB == "" {
		opts.InstallDB = DefaultInstallDB
	}
	if opts.Client == "" {
		opts.Client = DefaultClient
	}
	if opts.OSUser == "" {
		opts.OSUser = "mysql"
	}
	u, err := user.Lookup(opts.OSUser)
	if err != nil {
		return nil, fmt.Errorf("mylab: OS user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	root, err := os.MkdirTemp("", "mciv-mylab-")
	if err != nil {
		return nil, fmt.Errorf("mylab: %w", err)
	}
	s := &Server{root: root, Dir: filepath.Join(root, "data"), Binary: opts.Server, client: opts.Client}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(root)
		return nil, err
	}
	if err := os.Chown(root, uid, gid); err != nil {
		return fail(fmt.Errorf("mylab: %w", err))
	}
	install := exec.CommandContext(ctx, opts.InstallDB, "--no-defaults", "--datadir="+s.Dir,
		"--user="+opts.OSUser, "--skip-test-db", "--auth-root-authentication-method=normal")
	install.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	install.Dir = root
	if out, err := install.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("mylab: %s: %w: %s", opts.InstallDB, err, lastLines(out)))
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	s.Port = port
	var log bytes.Buffer
	s.cmd = exec.Command(opts.Server, "--no-defaults", "--datadir="+s.Dir, "--port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--socket="+filepath.Join(root, "mysqld.sock"),
		"--pid-file="+filepath.Join(root, "mysqld.pid"), "--skip-grant-tables", "--skip-name-resolve",
		"--innodb-buffer-pool-size=32M", "--skip-log-bin")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setpgid: true}
	s.cmd.Dir = root
	s.cmd.Stdout, s.cmd.Stderr = &log, &log
	if err := s.cmd.Start(); err != nil {
		return fail(fmt.Errorf("mylab: start %s: %w", opts.Server, err))
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, fmt.Errorf("mylab: %w; server log: %s", err, lastLines(log.Bytes()))
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := s.Query(ctx, "SELECT 1"); err == nil {
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("server exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("server not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Instance is the instance label mciv gives this server.
func (s *Server) Instance() string { return "mysql:" + strconv.Itoa(s.Port) }

// Query runs sql (COM_QUERY) with the command-line client and returns its
// tab-separated output without column names.
func (s *Server) Query(ctx context.Context, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, s.client, "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(s.Port),
		"-u", "root", "--connect-timeout=5", "-N", "-B", "-e", sql)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %q: %w: %s", s.client, sql, err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// Stop shuts the server down (SIGTERM, then a kill after 30 s) and removes
// its directory. It is safe to call twice.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return os.RemoveAll(s.root)
	}
	var errs []error
	select {
	case err := <-s.done:
		s.done <- err
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.done:
			s.done <- err
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			s.done <- <-s.done
			errs = append(errs, errors.New("mylab: server did not stop within 30s: killed"))
		}
	}
	if err := os.RemoveAll(s.root); err != nil {
		errs = append(errs, fmt.Errorf("mylab: %w", err))
	}
	return errors.Join(errs...)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("mylab: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(out []byte) string {
	const max = 2000
	s := strings.TrimSpace(string(out))
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return s
}
