package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

func runCLI(ctx context.Context, args ...string) (string, error) {
	var out testenv.LockedBuffer
	root := newRoot(&out, &out, func(string) string { return "" })
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestRulesCheck(t *testing.T) {
	out, err := runCLI(context.Background(), "rules", "check", "../../rules/default")
	if err != nil || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("default rules: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        signal: s\n        stat: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(context.Background(), "rules", "check", bad)
	var code exitCode
	if !errors.As(err, &code) || code != 1 {
		t.Fatalf("bad rules: err %v, want exit status 1", err)
	}
	if !strings.Contains(out, bad+":6:") {
		t.Fatalf("error does not name file:line:col: %s", out)
	}
}

func TestDoctorJSON(t *testing.T) {
	testenv.RequireRoot(t)
	out, err := runCLI(context.Background(), "doctor", "--json")
	if err != nil {
		t.Fatalf("doctor: %v\n%s", err, out)
	}
	var rep struct {
		Hooks []struct {
			Name     string `json:"name"`
			Attached bool   `json:"attached"`
			Type     string `json:"type"`
			Error    string `json:"error"`
		} `json:"hooks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --json is not JSON: %v\n%s", err, out)
	}
	attached := 0
	for _, h := range rep.Hooks {
		if h.Name == "" || h.Type == "" {
			t.Errorf("hook row without name or type: %+v", h)
		}
		if h.Attached {
			attached++
		} else if h.Error == "" {
			t.Errorf("hook %s (%s) not attached and no reason given", h.Name, h.Type)
		}
	}
	if attached == 0 {
		t.Errorf("no hook attached on this kernel: %s", out)
	}
}

func TestTailDecodesSamples(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := runCLI(ctx, "tail", "--nats", srv.URL(), "--subject", "mciv.samples.>", "--count", "2", "--json")
		done <- result{out, err}
	}()
	subj := wire.SamplesSubject("c1", "h1")
	var res result
	// Publish until tail has subscribed and seen two messages: one good, one garbage.
	for i := 0; ; i++ {
		data := wire.EncodeBatch(&wire.Batch{Cluster: "c1", Host: "h1", Seq: uint64(i + 1), Interval: time.Second,
			Series: []wire.Series{{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: 3}}})
		if i%2 == 1 {
			data = []byte("garbage")
		}
		_ = nc.Publish(subj, data)
		select {
		case res = <-done:
		case <-time.After(50 * time.Millisecond):
			continue
		case <-ctx.Done():
			t.Fatal("tail did not finish")
		}
		break
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	lines := strings.Split(strings.TrimSpace(res.out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", res.out)
	}
	var sawBatch, sawError bool
	for _, l := range lines {
		var v struct {
			Subject string          `json:"subject"`
			Message json.RawMessage `json:"message"`
			Error   string          `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if v.Subject != subj {
			t.Errorf("subject %q", v.Subject)
		}
		if strings.Contains(string(v.Message), `"tcp_retransmits_total"`) {
			sawBatch = true
		}
		if v.Error != "" {
			sawError = true
		}
	}
	if !sawBatch || !sawError {
		t.Errorf("want one decoded batch and one decode error, got %s", res.out)
	}
}
