package labproc

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadyAndStop(t *testing.T) {
	p, err := Start(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = p.WaitReady(context.Background(), 5*time.Second, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("WaitReady = %v after %d probes", err, calls)
	}
	if err := p.Stop(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(syscall.SIGTERM, time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStopKillsAStubbornProcess(t *testing.T) {
	cmd := exec.Command("sh", "-c", "trap '' TERM; echo trapped; sleep 30")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	// Signal only once the shell ignores SIGTERM.
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "trapped\n" {
		t.Fatalf("shell said %q, %v", line, err)
	}
	if err := p.Stop(syscall.SIGTERM, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop = %v, want a kill", err)
	}
}

func TestWaitReadySeesTheExit(t *testing.T) {
	p, err := Start(exec.Command("false"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(context.Background(), 5*time.Second, func(context.Context) error { return errors.New("no") })
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("WaitReady = %v, want the exit", err)
	}
}

func TestTailAndFreePort(t *testing.T) {
	if got := Tail([]byte(strings.Repeat("x", 5000) + "end\n")); len(got) != 2003 || !strings.HasSuffix(got, "end") {
		t.Fatalf("Tail: %d bytes", len(got))
	}
	if p, err := FreePort(); err != nil || p == 0 {
		t.Fatalf("FreePort = %d, %v", p, err)
	}
}
