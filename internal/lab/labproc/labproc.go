// Package labproc runs the throwaway servers of the test labs
// (internal/pglab, internal/mylab): start in its own process group, wait
// until a probe answers, stop gracefully then by force, and report the end
// of its log.
package labproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"os/exec"
)

// Process is a started server.
type Process struct {
	cmd  *exec.Cmd
	done chan error // holds the exit once it happened (put back by readers)
}

// Start starts cmd in a process group of its own (keeping any credential
// already set in cmd.SysProcAttr), so that Stop can kill all its children.
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

// Pid is the server's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// exited returns the exit error and true once the process has ended.
func (p *Process) exited() (error, bool) {
	select {
	case err := <-p.done:
		p.done <- err
		return err, true
	default:
		return nil, false
	}
}

// WaitReady polls probe every 100 ms until it succeeds, the process exits,
// timeout passes or ctx ends.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if probe(ctx) == nil {
			return nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("server exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("server not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Stop sends sig and waits up to grace for the exit, then kills the whole
// process group. It is safe to call twice.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) error {
	if _, ok := p.exited(); ok {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		p.done <- err
		return nil
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.done <- <-p.done
		return errors.New("server did not stop within " + grace.String() + ": killed")
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Tail returns the end of a command's output for an error message.
func Tail(out []byte) string {
	const max = 2000
	s := strings.TrimSpace(string(out))
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return s
}
