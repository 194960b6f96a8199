package bus

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"

	"context"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedRefusesOpenNonLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := StartEmbedded(ctx, EmbeddedOptions{DataDir: t.TempDir(), Listen: "0.0.0.0:0"}, nil)
	if err == nil || !strings.Contains(err.Error(), "mciv auth init") {
		t.Fatalf("StartEmbedded on 0.0.0.0 without auth: %v, want a refusal naming `mciv auth init`", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "0.0.0.0": false, "": false, "10.0.0.1": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
}

// TestReadableCredsFileWarns: a credentials file readable by its group or
// others is used, with a warning that names it and the fix.
func TestReadableCredsFileWarns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h1.creds")
	if err := os.WriteFile(path, []byte("not a real credential"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o644, true}, {0o600, false}} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		if _, err := (Secure{}).options(path, slog.New(slog.NewTextHandler(&log, nil))); err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(log.String(), "readable by others") && strings.Contains(log.String(), path)
		if warned != tc.warn {
			t.Errorf("mode %04o: warned %v, want %v: %s", tc.mode, warned, tc.warn, log.String())
		}
	}
}
