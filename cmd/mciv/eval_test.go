package main

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer/score"
	"github.com/mciv/mciv/detect/synth"
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
	for _, want := range []string{"corpus synth: 4 series", "| onsets standard |", "| cusum | cusum |", "| (all rules) | 7 rules |", "| auto | auto |",
		// The reference rows follow, swept only.
		"| (reference) random | random | – | – | – | ", "| (reference) windowed gaussian | windowed_gaussian | – | – | – | "} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "| (all rules) |"), strings.Index(out, "| (reference) random |"); i < 0 || j < i {
		t.Errorf("the reference rows do not follow the rules' rows:\n%s", out)
	}
	out, err = runCLI(context.Background(), "eval", "--rules", "../../analyzer/score/testdata/detectors.yaml", "--corpus", dir, "--reference=false")
	if err != nil || !strings.Contains(out, "| (all rules) | 7 rules |") || strings.Contains(out, "(reference)") {
		t.Errorf("eval --reference=false: %v\n%s", err, out)
	}
	// Only the rules of the series' signal judge them.
	out, err = runCLI(context.Background(), "eval", "--rules", "../../rules/default", "--corpus", dir, "--signal", "db_query_seconds:p99")
	if err != nil {
		t.Fatalf("eval --signal: %v\n%s", err, out)
	}
	if !strings.Contains(out, "| QueryLatencyAnomaly | auto |") || strings.Contains(out, "| TCPRetransmitRateHigh |") {
		t.Errorf("eval --signal db_query_seconds:p99:\n%s", out)
	}
	// signals.json written by eval corpus --signal does the same.
	dir2 := filepath.Join(t.TempDir(), "synth")
	if _, err := runCLI(context.Background(), "eval", "corpus", "--seeds", "1-2", "--signal", "tcp_retransmits_total", "--out", dir2); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(context.Background(), "eval", "--rules", "../../rules/default", "--corpus", dir2)
	if err != nil || !strings.Contains(out, "| TCPRetransmitRateHigh |") || strings.Contains(out, "| QueryLatency") {
		t.Errorf("signals.json: %v\n%s", err, out)
	}
	// No signal: the units are unknown, so the static thresholds sit out
	// (named under the table) and the learning rules judge every series.
	out, err = runCLI(context.Background(), "eval", "--rules", "../../rules/default", "--corpus", dir)
	if err != nil || !strings.Contains(out, "| QueryRateAnomaly | auto |") || strings.Contains(out, "| QueryLatencyHigh |") ||
		!strings.Contains(out, "judged no series") || !strings.Contains(out, "QueryLatencyHigh") {
		t.Errorf("no signal: %v\n%s", err, out)
	}
	// Interrupted (Ctrl-C cancels the command's context): an error, no table.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Loading the corpus stops first.
	if out, err := runCLI(ctx, "eval", "--rules", "../../analyzer/score/testdata/detectors.yaml", "--corpus", dir); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "corpus "+dir) || strings.Contains(out, "| auto |") {
		t.Errorf("cancelled eval: %v\n%s", err, out)
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
	// Longer series: --rows.
	dir3 := filepath.Join(t.TempDir(), "long")
	if out, err := runCLI(context.Background(), "eval", "corpus", "--seeds", "1-2", "--rows", "12000", "--out", dir3); err != nil || !strings.Contains(out, "2 series, 24000 rows") {
		t.Errorf("--rows 12000: %v\n%s", err, out)
	}
	if _, err := runCLI(context.Background(), "eval", "corpus", "--rows", "10", "--out", dir3); err == nil || !strings.Contains(err.Error(), "--rows 10") {
		t.Errorf("--rows 10: %v, want an error naming it", err)
	}
}

// TestSynthCorpusLabelsOnsets checks that each planted anomaly's window
// is NAB's: its width, centred on the anomaly's first row, whether the
// anomaly lasts one row or half the series.
func TestSynthCorpusLabelsOnsets(t *testing.T) {
	const step = 5 * time.Minute
	c, err := synthCorpus("1-40", step, synth.Rows)
	if err != nil {
		t.Fatal(err)
	}
	long := 0
	for i, s := range c.Series {
		g := synth.Generate(uint64(i+1), step, 0)
		n := len(g.Values)
		width := int(0.10 * float64(n) / float64(max(len(g.Anomalies), 1)))
		for _, an := range g.Anomalies {
			if an.To-an.From > width {
				long++
			}
			k := slices.IndexFunc(s.Windows, func(w score.Window) bool { return w.From <= an.From && an.From <= w.To })
			if k < 0 {
				if an.From-width/2 >= score.Probation(n) {
					t.Errorf("%s: %s at row %d has no window in %v", s.Name, an.Kind, an.From, s.Windows)
				}
				continue
			}
			if w := s.Windows[k]; w.From != an.From-width/2 || w.To != an.From+width/2 {
				t.Errorf("%s: %s at rows %d-%d has window %v, want %d-%d", s.Name, an.Kind, an.From, an.To, w, an.From-width/2, an.From+width/2)
			}
		}
	}
	if long == 0 {
		t.Error("no anomaly longer than its window: the test judges nothing")
	}
}
