package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/lab/testenv"
)

// runMciv runs the command line with args and returns stdout and stderr.
func runMciv(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRoot(&stdout, &stderr, func(k string) string { return env[k] })
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return stdout.String(), stderr.String(), err
}

func TestSayWritesTheClip(t *testing.T) {
	testenv.RequireCommand(t, "espeak-ng", "sox")
	out := filepath.Join(t.TempDir(), "hello.wav")
	stdout, stderr, err := runMciv(t, nil, "say", "--engine", "espeak", "--no-cache", "--out", out, "Critical.", "Disk", "full", "on", "d b 1")
	if err != nil {
		t.Fatalf("say: %v\n%s", err, stderr)
	}
	if strings.TrimSpace(stdout) != out {
		t.Errorf("printed %q, want %q", stdout, out)
	}
	data, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(data, []byte("RIFF")) || len(data) < 10000 {
		t.Fatalf("clip %s: %d bytes, %v; want a WAV file", out, len(data), err)
	}
	if !strings.Contains(stderr, "spoken by espeak") {
		t.Errorf("stderr %q", stderr)
	}
}

func TestSayTempFileByDefault(t *testing.T) {
	testenv.RequireCommand(t, "espeak-ng", "sox")
	// No Google credentials: the default chain is espeak alone.
	stdout, stderr, err := runMciv(t, nil, "say", "--no-cache", "hello")
	if err != nil {
		t.Fatalf("say: %v\n%s", err, stderr)
	}
	path := strings.TrimSpace(stdout)
	t.Cleanup(func() { os.Remove(path) })
	if filepath.Ext(path) != ".ogg" {
		t.Errorf("temporary clip %q, want .ogg", path)
	}
	if data, err := os.ReadFile(path); err != nil || !bytes.HasPrefix(data, []byte("OggS")) {
		t.Errorf("clip %s: %v; want an Ogg file", path, err)
	}
}

func TestSayErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"say"}, "requires at least 1 arg"},
		{[]string{"say", "--engine", "polly", "hi"}, `unknown engine "polly"`},
		{[]string{"say", "--engine", "espeak", "--out", "x.flac", "hi"}, "no audio format for extension"},
	} {
		_, _, err := runMciv(t, nil, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
