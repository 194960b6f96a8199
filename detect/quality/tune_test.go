package quality

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mciv/mciv/detect"
)

// tuneGrid is the grid of configurations TestTune tries. Data values are
// min-max scaled to [0,1], so min_delta is a fraction of each metric's range.
func tuneGrid() []detect.Config {
	var out []detect.Config
	bases := []time.Duration{time.Hour, 4 * time.Hour}
	deltas := []float64{0, 0.02, 0.05, 0.1}
	for _, typ := range []string{"zscore", "robust_zscore", "ewma"} {
		for _, b := range bases {
			for _, thr := range []float64{4, 6, 8} {
				for _, md := range deltas {
					out = append(out, detect.Config{Type: typ, Baseline: b, Threshold: thr, MinDelta: md})
				}
			}
		}
	}
	for _, b := range bases {
		for _, k := range []float64{0.5, 1} {
			for _, h := range []float64{8, 16} {
				for _, md := range deltas[1:] {
					out = append(out, detect.Config{Type: "cusum", Baseline: b, K: k, Threshold: h, MinDelta: md})
				}
			}
		}
	}
	for _, thr := range []float64{4, 6, 8} {
		for _, md := range deltas[1:] {
			out = append(out, detect.Config{Type: "seasonal", Threshold: thr, MinDelta: md})
		}
	}
	for _, w := range []time.Duration{15 * time.Minute, time.Hour} {
		for _, thr := range []float64{0.5, 1, 2} {
			for _, md := range deltas[1:] {
				out = append(out, detect.Config{Type: "rate_of_change", Window: w, Threshold: thr, MinDelta: md})
			}
		}
	}
	return out
}

// tuneGrid2 is the second round: higher thresholds where the first round
// was still improving at its edge, with min_delta 0.1.
func tuneGrid2() []detect.Config {
	var out []detect.Config
	const md = 0.1
	for _, b := range []time.Duration{time.Hour, 4 * time.Hour, 24 * time.Hour} {
		for _, thr := range []float64{10, 12, 16} {
			out = append(out,
				detect.Config{Type: "zscore", Baseline: b, Threshold: thr, MinDelta: md},
				detect.Config{Type: "ewma", Baseline: b, Threshold: thr, MinDelta: md})
		}
		for _, thr := range []float64{12, 16, 24, 32} {
			out = append(out, detect.Config{Type: "robust_zscore", Baseline: b, Threshold: thr, MinDelta: md})
		}
		for _, k := range []float64{1, 2} {
			for _, h := range []float64{16, 32, 64} {
				out = append(out, detect.Config{Type: "cusum", Baseline: b, K: k, Threshold: h, MinDelta: md})
			}
		}
	}
	for _, thr := range []float64{10, 12, 16} {
		out = append(out, detect.Config{Type: "seasonal", Threshold: thr, MinDelta: md})
	}
	return out
}

// TestTune prints the tuning grid's scores on the first half of every
// test half (the tuning split). Run with MCIV_QUALITY_TUNE=1; it takes
// minutes.
func TestTune(t *testing.T) {
	if os.Getenv("MCIV_QUALITY_TUNE") == "" {
		t.Skip("set MCIV_QUALITY_TUNE=1 to run the tuning grid (minutes)")
	}
	sets := loadAll(t)
	if err := WriteTable(os.Stdout, nil); err != nil {
		t.Fatal(err)
	}
	grid := tuneGrid()
	if os.Getenv("MCIV_QUALITY_TUNE") == "2" {
		grid = tuneGrid2()
	}
	for _, c := range grid {
		spec, err := detect.NewSpec(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, ds := range sets {
			if err := writeRows(os.Stdout, []Report{Evaluate(spec, ds, Split{0, 0.5})}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// loadAll loads SMD and ASD or skips the test.
func loadAll(tb testing.TB) []*Dataset {
	tb.Helper()
	dir, err := DataDir()
	if err != nil {
		tb.Skipf("labelled data not found: %v", err)
	}
	smd, err := LoadSMD(dir)
	if err != nil {
		tb.Skipf("SMD not loadable: %v", err)
	}
	asd, err := LoadASD(dir)
	if err != nil {
		tb.Skipf("ASD not loadable: %v", err)
	}
	return []*Dataset{smd, asd}
}

// TestTunePerMetric prints a threshold grid judged per metric (see
// PerMetric) on the tuning split: the view of a rule on one signal. Run
// with MCIV_QUALITY_TUNE=metric.
func TestTunePerMetric(t *testing.T) {
	if os.Getenv("MCIV_QUALITY_TUNE") != "metric" {
		t.Skip("set MCIV_QUALITY_TUNE=metric to run the per-metric grid (minutes)")
	}
	sets := perMetricSets(t)
	grid := map[string][]float64{
		"zscore":         {4, 6, 8, 12, 16},
		"robust_zscore":  {6, 8, 12, 16, 24},
		"ewma":           {4, 6, 8, 12, 16},
		"cusum":          {8, 16, 32},
		"seasonal":       {4, 6, 8, 10, 12},
		"rate_of_change": {0.5, 1, 2},
	}
	if err := WriteTable(os.Stdout, nil); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"zscore", "robust_zscore", "ewma", "cusum", "seasonal", "rate_of_change"} {
		for _, thr := range grid[typ] {
			c := detect.Default(typ)
			c.Threshold, c.MinDelta = thr, 0.1
			spec, err := detect.NewSpec(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, ds := range sets {
				if err := writeRows(os.Stdout, []Report{Evaluate(spec, ds, Split{0, 0.5})}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// perMetricSets loads SMD and ASD as per-metric datasets or skips.
func perMetricSets(tb testing.TB) []*Dataset {
	tb.Helper()
	dir, err := DataDir()
	if err != nil {
		tb.Skipf("labelled data not found: %v", err)
	}
	var out []*Dataset
	for _, ds := range loadAll(tb) {
		pm, err := PerMetric(ds, filepath.Join(dir, "interpretation_label"))
		if err != nil {
			tb.Skipf("interpretation labels: %v", err)
		}
		out = append(out, pm)
	}
	return out
}
