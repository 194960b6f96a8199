package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/internal/bus"
)

func TestReloadOnSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "r.yaml")
	rule := func(name string) []byte {
		return []byte("groups:\n- name: g\n  rules:\n  - alert: " + name + "\n    signal: s\n    stat: count\n    detector: {type: threshold, op: '>', value: 1}\n")
	}
	if err := os.WriteFile(file, rule("A"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := analyzer.New(analyzer.Config{RulePaths: []string{dir}, ReloadInterval: -1}, js, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal)
	results := make(chan string, 1)
	go reloadOn(ctx, sig, a, slog.New(slog.DiscardHandler), func(r string) { results <- r })

	if err := os.WriteFile(file, rule("B"), 0o644); err != nil {
		t.Fatal(err)
	}
	sig <- syscall.SIGHUP
	if r := <-results; r != analyzer.ReloadApplied || a.Rules().Rules()[0].Alert != "B" {
		t.Fatalf("reload %s, rules %v", r, a.Rules().Rules()[0].Alert)
	}
	if err := os.WriteFile(file, []byte("groups: [{"), 0o644); err != nil {
		t.Fatal(err)
	}
	sig <- syscall.SIGHUP
	if r := <-results; r != analyzer.ReloadRejected || a.Rules().Rules()[0].Alert != "B" {
		t.Fatalf("reload %s, rules %v", r, a.Rules().Rules()[0].Alert)
	}
}
