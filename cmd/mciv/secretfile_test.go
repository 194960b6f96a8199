package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpWarnsOnReadableConfig: `mciv up` with a configuration file that
// holds a token and is readable by its group and others warns, naming the
// file and the fix; at mode 0600 it does not.
func TestUpWarnsOnReadableConfig(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o644, true}, {0o640, true}, {0o600, false}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "mciv.yaml")
		body := "host: h1\ndata_dir: " + filepath.Join(dir, "data") + "\nnats: {listen: \"127.0.0.1:0\"}\nmetrics: {listen: \"\"}\n" +
			"collector: {enabled: false}\nanalyzer: {enabled: false}\nnotifier: {enabled: false}\n" +
			"slack: {token: xoxb-1-secret, channel: C0ONCALL}\n"
		if err := os.WriteFile(path, []byte(body), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil { // past the umask
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		out, err := runCLI(ctx, "up", "--config", path)
		cancel()
		if err != nil && !strings.Contains(err.Error(), "context") {
			t.Fatalf("mode %04o: up: %v\n%s", tc.mode, err, out)
		}
		warned := strings.Contains(out, "configuration file readable by others") && strings.Contains(out, "chmod 600 "+path)
		if warned != tc.warn {
			t.Errorf("mode %04o: warned %v, want %v; output:\n%s", tc.mode, warned, tc.warn, out)
		}
		if strings.Contains(out, "xoxb-1-secret") {
			t.Errorf("mode %04o: the token is in the output", tc.mode)
		}
	}
}
