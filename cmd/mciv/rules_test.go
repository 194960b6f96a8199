package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs the mciv command line with args and returns its output and
// exit status.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(&out, &out, func(string) string { return "" })
	root.SetArgs(args)
	err := root.Execute()
	var code exitCode
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &code):
		return out.String(), int(code)
	default:
		return out.String() + err.Error(), 1
	}
}

func TestRulesCheckDefault(t *testing.T) {
	out, code := run(t, "rules", "check", "../../rules/default")
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestRulesTest(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "junit.xml")
	out, code := run(t, "rules", "test", "--junit", junit, "../../rules/default/tests/network.test.yaml")
	if code != 0 || !strings.Contains(out, "PASS retransmit storm") || !strings.HasSuffix(out, "SUCCESS\n") {
		t.Fatalf("exit %d: %s", code, out)
	}
	data, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(data), `<testsuites tests="4" failures="0" errors="0">`) {
		t.Fatalf("junit: %s %v", data, err)
	}

	out, code = run(t, "rules", "test", "../../rules/default/tests")
	if code != 0 || strings.Count(out, "Unit testing:") != 3 {
		t.Fatalf("directory: exit %d: %s", code, out)
	}

	bad := filepath.Join(t.TempDir(), "bad.test.yaml")
	if err := os.WriteFile(bad, []byte("rule_files: [nope.yaml]\ntests: [{name: x}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, "rules", "test", bad)
	if code != 1 || !strings.Contains(out, "nope.yaml: cannot read") || !strings.HasSuffix(out, "FAILED\n") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestRulesCheckWarns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	src := `groups:
  - name: g
    rules:
      - alert: RetransmitsFor
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
        for: 2s
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, "rules", "check", path)
	if code != 0 || !strings.HasPrefix(out, "ok: 1 rules in 1 groups\nwarning: "+path+":4:") || !strings.Contains(out, "use evidence") {
		t.Fatalf("exit %d: %s", code, out)
	}
}
