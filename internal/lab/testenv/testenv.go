// Package testenv lets tests that need root, a command or a kernel feature
// skip with a clear reason on a developer's machine, and fail instead in CI
// (MCIV_NO_SKIP=1, set by scripts/test.sh when CI=true), where nothing may
// be skipped.
package testenv

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// NoSkip reports whether missing prerequisites must fail tests.
func NoSkip() bool { return os.Getenv("MCIV_NO_SKIP") == "1" }

// Missing skips t (or fails it under MCIV_NO_SKIP=1) because of reason.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if NoSkip() {
		t.Fatalf("prerequisite missing in CI (MCIV_NO_SKIP=1): %s", reason)
		return
	}
	t.Skipf("skipped: %s", reason)
}

// RequireRoot skips unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root (eBPF, network namespaces); run `sudo make test`")
	}
}

// RequireCommand skips unless every named command is on PATH.
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Missing(t, "needs the command "+n+" (scripts/deps.sh installs it)")
		}
	}
}

// RequireFile skips unless path exists.
func RequireFile(t testing.TB, path, why string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "needs "+path+": "+why)
	}
}

// kernelLockPath is the lock that serialises tests with host-wide kernel
// effects across test binaries (go test runs packages in parallel).
const kernelLockPath = "/run/mciv-test-kernel.lock"

// ExclusiveKernel holds a host-wide lock for the rest of the test. Tests
// that cause or count host-wide kernel events (eBPF probes see every TCP
// retransmit on the host, whatever the namespace) take it so that they do
// not count each other's packet loss. It is released when the test ends.
func ExclusiveKernel(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(kernelLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("kernel test lock %s: %v", kernelLockPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("kernel test lock %s: %v", kernelLockPath, err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
