package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/detect"
)

// detectorFile is a rules file with one rule whose detector is det.
func detectorFile(det string) string {
	return `groups:
  - name: g
    rules:
      - alert: A
        signal: s
        stat: mean
        detector: ` + det + "\n"
}

func TestParseDetectors(t *testing.T) {
	for _, tc := range []struct {
		det  string
		want detect.Config // the parts that must be set (after defaults)
	}{
		{`{type: zscore}`, detect.Config{Type: "zscore", Baseline: detect.Default("zscore").Baseline, Threshold: detect.Default("zscore").Threshold, Warmup: detect.Default("zscore").Baseline / 4}},
		{`{type: robust_zscore, baseline: 30m, threshold: 4, warmup: 5m, direction: up}`,
			detect.Config{Type: "robust_zscore", Baseline: 30 * time.Minute, Threshold: 4, Warmup: 5 * time.Minute, Direction: detect.Up, Samples: 64}},
		{`{type: robust_zscore, samples: 128, min_delta: 0.5}`, detect.Config{Type: "robust_zscore", Samples: 128, MinDelta: 0.5}},
		{`{type: ewma, lambda: 0.2, threshold: 3.5, hysteresis: 0.5}`, detect.Config{Type: "ewma", Lambda: 0.2, Threshold: 3.5, Hysteresis: 0.5}},
		{`{type: cusum, k: 0.5, threshold: 6, baseline: 2h, direction: down}`, detect.Config{Type: "cusum", K: 0.5, Threshold: 6, Baseline: 2 * time.Hour, Direction: detect.Down}},
		{`{type: seasonal, slot: 30m, period: 1w, baseline: 4w}`, detect.Config{Type: "seasonal", Slot: 30 * time.Minute, Period: 7 * 24 * time.Hour, Baseline: 28 * 24 * time.Hour, Warmup: 7 * time.Hour}},
		{`{type: rate_of_change, window: 1d12h, threshold: 1}`, detect.Config{Type: "rate_of_change", Window: 36 * time.Hour, Threshold: 1, Warmup: 36 * time.Hour}},
		{`{type: absence, for: 2m}`, detect.Config{Type: "absence", For: 2 * time.Minute}},
	} {
		groups, err := Parse("f.yaml", []byte(detectorFile(tc.det)))
		if err != nil {
			t.Errorf("%s: %v", tc.det, err)
			continue
		}
		spec, ok := groups[0].Rules[0].Detector.(*detect.StatSpec)
		if !ok {
			t.Errorf("%s: spec %T", tc.det, groups[0].Rules[0].Detector)
			continue
		}
		got, w := spec.Config(), tc.want
		check := func(name string, g, want any, set bool) {
			if set && g != want {
				t.Errorf("%s: %s = %v, want %v", tc.det, name, g, want)
			}
		}
		check("type", got.Type, w.Type, true)
		check("baseline", got.Baseline, w.Baseline, w.Baseline != 0)
		check("threshold", got.Threshold, w.Threshold, w.Threshold != 0)
		check("warmup", got.Warmup, w.Warmup, w.Warmup != 0)
		check("direction", got.Direction, w.Direction, w.Direction != "")
		check("samples", got.Samples, w.Samples, w.Samples != 0)
		check("min_delta", got.MinDelta, w.MinDelta, w.MinDelta != 0)
		check("lambda", got.Lambda, w.Lambda, w.Lambda != 0)
		check("k", got.K, w.K, w.K != 0)
		check("hysteresis", got.Hysteresis, w.Hysteresis, w.Hysteresis != 0)
		check("slot", got.Slot, w.Slot, w.Slot != 0)
		check("period", got.Period, w.Period, w.Period != 0)
		check("window", got.Window, w.Window, w.Window != 0)
		check("for", got.For, w.For, w.For != 0)
	}
}

func TestParseThresholdClear(t *testing.T) {
	groups, err := Parse("f.yaml", []byte(detectorFile(`{type: threshold, op: ">", value: 5, clear: 4}`)))
	if err != nil {
		t.Fatal(err)
	}
	s := groups[0].Rules[0].Detector.(detect.ThresholdSpec)
	if s.Clear == nil || *s.Clear != 4 || s.String() != "threshold > 5 clear 4" {
		t.Fatalf("spec %v", s)
	}
}

func TestParseDetectorErrors(t *testing.T) {
	for _, tc := range []struct {
		det, want string
	}{
		{`{type: zscore, treshold: 4}`, `f.yaml:7:34: group "g", rule "A": unknown key "treshold" in zscore detector (known: type, baseline, threshold, warmup, direction, min_delta, hysteresis, baseline_samples, warmup_samples)`},
		{`{type: zscore, threshold: "4"}`, `f.yaml:7:45: group "g", rule "A": detector threshold must be a number, not "4"`},
		{`{type: zscore, threshold: -1}`, `f.yaml:7:45: group "g", rule "A": detector: threshold: -1 is out of range (0, 1e+09]`},
		{`{type: zscore, threshold: 0}`, `f.yaml:7:45: group "g", rule "A": detector threshold must be positive`},
		{`{type: zscore, baseline: 5x}`, `f.yaml:7:44: group "g", rule "A": detector baseline: "5x" is not a duration such as 30s, 5m, 1h30m or 7d`},
		{`{type: zscore, baseline: [1]}`, `f.yaml:7:44: group "g", rule "A": detector baseline must be a duration such as 30m or 7d, not a list`},
		{`{type: zscore, warmup: -5m}`, `f.yaml:7:42: group "g", rule "A": detector warmup must be positive`},
		{`{type: zscore, direction: sideways}`, `f.yaml:7:45: group "g", rule "A": detector: unknown direction "sideways" (one of up, down, both)`},
		{`{type: zscore, hysteresis: 1.5}`, `f.yaml:7:46: group "g", rule "A": detector: hysteresis: 1.5 is out of range (0, 1]`},
		{`{type: zscore, min_delta: -1}`, `f.yaml:7:45: group "g", rule "A": detector: min_delta: must be a finite number >= 0`},
		{`{type: robust_zscore, samples: 2.5}`, `f.yaml:7:50: group "g", rule "A": detector samples must be a whole number, not "2.5"`},
		{`{type: robust_zscore, samples: 4}`, `f.yaml:7:50: group "g", rule "A": detector: samples: 4 is out of range [8, 4096]`},
		{`{type: ewma, lambda: 2}`, `f.yaml:7:40: group "g", rule "A": detector: lambda: 2 is out of range (0, 1]`},
		{`{type: cusum, k: 500}`, `f.yaml:7:36: group "g", rule "A": detector: k: 500 is out of range (0, 100]`},
		{`{type: seasonal, slot: 7m}`, `f.yaml:7:42: group "g", rule "A": detector: slot: 7m0s does not divide the period 24h0m0s`},
		{`{type: absence, threshold: 3}`, `f.yaml:7:35: group "g", rule "A": unknown key "threshold" in absence detector (known: type, for)`},
		{`{type: threshold, op: ">", value: 5, clear: 6}`, `f.yaml:7:63: group "g", rule "A": detector: clear: 6 must not be above the value 5 for >`},
		{`{type: [zscore]}`, `f.yaml:7:26: group "g", rule "A": detector type must be a string, not a list`},
		{`{type: }`, `f.yaml:7:26: group "g", rule "A": detector: missing required key "type"`},
		{`zscore`, `f.yaml:7:19: group "g", rule "A": detector must be a mapping such as {type: robust_zscore, baseline: 30m, threshold: 4}, not a scalar`},
	} {
		_, err := Parse("f.yaml", []byte(detectorFile(tc.det)))
		if err == nil {
			t.Errorf("%s: no error", tc.det)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.det, got, tc.want)
		}
	}
}

func TestParseLongDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour,
		"1w": 7 * 24 * time.Hour, "1w1d": 8 * 24 * time.Hour, "1d12h": 36 * time.Hour,
	} {
		if got, err := parseLongDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "7x", "1d1w", "99999d"} {
		if _, err := parseLongDuration(bad); err == nil || !strings.Contains(err.Error(), "duration") {
			t.Errorf("%s: error %v", bad, err)
		}
	}
}
