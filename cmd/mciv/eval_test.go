package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestEval(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "synth")
	out, err := runCLI(context.Background(), "eval", "corpus", "--kind", "synth", "--step", "1m", "--seeds", "1-4", "--out", dir)
	if err != nil || !strings.Contains(out, "4 series, 16000 rows") {
		t.Fatalf("corpus: %v\n%s", err, out)
	}
	out, err = runCLI(context.Background(), "eval", "--rules", "../../analyzer/score/testdata/detectors.yaml", "--corpus", dir)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, out)
	}
	for _, want := range []string{"corpus synth: 4 series", "| onsets standard |", "| cusum | cusum |", "| (all rules) | 7 rules |", "| auto | auto |"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if _, err := runCLI(context.Background(), "eval", "--corpus", t.TempDir()); err == nil {
		t.Error("empty corpus: no error")
	}
	if _, err := runCLI(context.Background(), "eval", "corpus", "--kind", "nope", "--out", dir); err == nil {
		t.Error("unknown kind: no error")
	}
	if _, err := runCLI(context.Background(), "eval", "corpus", "--seeds", "9-1", "--out", dir); err == nil {
		t.Error("bad seeds: no error")
	}
}
