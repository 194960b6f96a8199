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
	proc   *labproc.Process
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
		return fail(fmt.Errorf("mylab: %s: %w: %s", opts.InstallDB, err, labproc.Tail(out)))
	}
	port, err := labproc.FreePort()
	if err != nil {
		return fail(err)
	}
	s.Port = port
	var log bytes.Buffer
	cmd := exec.Command(opts.Server, "--no-defaults", "--datadir="+s.Dir, "--port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--socket="+filepath.Join(root, "mysqld.sock"),
		"--pid-file="+filepath.Join(root, "mysqld.pid"), "--skip-grant-tables", "--skip-name-resolve",
		"--innodb-buffer-pool-size=32M", "--skip-log-bin")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &log, &log
	if s.proc, err = labproc.Start(cmd); err != nil {
		return fail(fmt.Errorf("mylab: %w", err))
	}
	if err := s.proc.WaitReady(ctx, time.Minute, func(ctx context.Context) error {
		_, err := s.Query(ctx, "SELECT 1")
		return err
	}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("mylab: %w; server log: %s", err, labproc.Tail(log.Bytes()))
	}
	return s, nil
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.proc.Pid() }

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
	var errs []error
	if s.proc != nil {
		if err := s.proc.Stop(syscall.SIGTERM, 30*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("mylab: %w", err))
		}
	}
	if err := os.RemoveAll(s.root); err != nil {
		errs = append(errs, fmt.Errorf("mylab: %w", err))
	}
	return errors.Join(errs...)
}
