package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// repoRoot is the mciv repository (two levels up from deploy/validate).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// need skips (or, with MCIV_NO_SKIP=1, fails) a test whose prerequisite is missing.
func need(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("MCIV_NO_SKIP") == "1" {
		t.Fatalf("prerequisite missing (MCIV_NO_SKIP=1): %s", why)
	}
	t.Skip(why)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// mcivBinary builds ./cmd/mciv once per test run, from the repository root.
func mcivBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mciv-validate-bin")
		if err != nil {
			buildErr = err
			return
		}
		// World-readable and -executable: tests run it as another user.
		_ = os.Chmod(dir, 0o755)
		binPath = filepath.Join(dir, "mciv")
		cmd := exec.Command(goTool(), "build", "-o", binPath, "./cmd/mciv")
		cmd.Dir = repoRoot(t)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/mciv: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
