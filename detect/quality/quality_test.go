package quality

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/detect"
)

// benchMinDelta is the min_delta of the benchmark runs: both datasets are
// min-max scaled to [0,1], so 0.1 is a tenth of each metric's range (see
// TestTune; without it the many near-constant metrics dominate).
const benchMinDelta = 0.1

// benchConfigs are the configurations the quality table and benchmarks
// report: each type's defaults (tuned per metric, TestTunePerMetric), then
// the best of the machine-level grid (TestTune), all with benchMinDelta,
// and a static threshold for comparison.
func benchConfigs() []detect.Config {
	var out []detect.Config
	for _, typ := range []string{"zscore", "robust_zscore", "ewma", "cusum", "seasonal", "rate_of_change"} {
		c := detect.Default(typ)
		c.MinDelta = benchMinDelta
		out = append(out, c)
	}
	tuned := []detect.Config{
		{Type: "zscore", Baseline: 4 * time.Hour, Threshold: 16},
		{Type: "robust_zscore", Baseline: time.Hour, Threshold: 32},
		{Type: "ewma", Baseline: time.Hour, Threshold: 16},
		{Type: "cusum", Baseline: time.Hour, K: 2, Threshold: 32},
		{Type: "seasonal", Threshold: 12},
	}
	for _, c := range tuned {
		c.MinDelta = benchMinDelta
		out = append(out, c)
	}
	// A static threshold at 0.9 of the metric's range, for comparison.
	return append(out, detect.Config{Type: "threshold", Op: detect.OpGT, Value: 0.9})
}

// splits are the parts of the test halves the table reports: the half used
// for tuning, the held-out half, and the whole.
func splits() []struct {
	name  string
	split Split
} {
	return []struct {
		name  string
		split Split
	}{{"tune", Split{0, 0.5}}, {"held-out", Split{0.5, 1}}, {"all", Whole()}}
}

// TestQualityTable prints the quality table in markdown: machine-level
// (SMD, ASD) and per metric (SMD/metric, ASD/metric, see PerMetric). It
// needs the labelled data and a few minutes: run with MCIV_QUALITY=1.
func TestQualityTable(t *testing.T) {
	if os.Getenv("MCIV_QUALITY") == "" {
		t.Skip("set MCIV_QUALITY=1 to print the detection-quality table (about a minute)")
	}
	sets := loadAll(t)
	dir, _ := DataDir()
	for _, ds := range sets[:2] {
		pm, err := PerMetric(ds, filepath.Join(dir, "interpretation_label"))
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, pm)
	}
	if err := WriteTable(os.Stdout, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range benchConfigs() {
		spec, err := detect.NewSpec(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, ds := range sets {
			var sps []Split
			for _, sp := range splits() {
				sps = append(sps, sp.split)
			}
			reps := EvaluateSplits(spec, ds, sps...)
			for i, sp := range splits() {
				reps[i].Dataset = ds.Name + " " + sp.name
			}
			if err := writeRows(os.Stdout, reps); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkQuality reports the detection quality of each detector on the
// held-out half of each dataset's test rows as benchmark metrics.
func BenchmarkQuality(b *testing.B) {
	sets := loadAll(b)
	for _, ds := range sets {
		for _, c := range benchConfigs() {
			spec, err := detect.NewSpec(c)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%s", ds.Name, strings.ReplaceAll(spec.String(), " ", "_")), func(b *testing.B) {
				var r Report
				for b.Loop() {
					r = Evaluate(spec, ds, Split{0.5, 1})
				}
				b.ReportMetric(r.BestPA.F1(), "PA-F1-best")
				b.ReportMetric(r.DefaultPA.F1(), "PA-F1-default")
				b.ReportMetric(r.NABBest, "NAB-best")
				b.ReportMetric(r.NABDefault, "NAB-default")
				b.ReportMetric(r.NABOnsets, "NAB-onsets")
			})
		}
	}
}
