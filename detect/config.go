package detect

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Config is a detector's configuration as written in a rules file, before
// validation. A zero field means "use the type's default". NewSpec checks
// it and fills in the defaults.
type Config struct {
	// Type is the detector type (see Types).
	Type string

	// Op, Value and Clear configure a static threshold: it fires while
	// "v Op Value" holds and, once firing, stops only when "v Op Clear"
	// no longer holds. Clear nil means Value (no hysteresis).
	Op    Op
	Value float64
	Clear *float64

	// Baseline is the time constant of the EW baseline (zscore, ewma,
	// cusum, seasonal) or the length of the window (robust_zscore).
	Baseline time.Duration
	// Warmup is how long after its first sample a detector cannot fire.
	Warmup time.Duration
	// Window is the look-back of rate_of_change.
	Window time.Duration
	// For is the silence after which absence fires.
	For time.Duration
	// Slot is the width of a seasonal time slot; Period is the season
	// (24h for time of day, 168h for time of day and day of week).
	Slot, Period time.Duration

	// Threshold is the deviation at which the detector fires: for auto,
	// in nines of the calibrated tail probability (5: p <= 1e-5); standard
	// deviations (zscore, seasonal), MAD-sigmas (robust_zscore), control
	// limit L (ewma), decision interval h (cusum), relative change
	// (rate_of_change; 1 = +100 %).
	Threshold float64
	// MinDelta is the smallest absolute deviation from the baseline that
	// can fire.
	MinDelta float64
	// Hysteresis is the fraction of the threshold below which a firing
	// detector clears, in (0,1].
	Hysteresis float64
	// Lambda is the EWMA smoothing weight of the ewma chart, in (0,1].
	Lambda float64
	// K is the CUSUM reference value (allowance) in standard deviations.
	K float64
	// Direction is which deviations count (default both).
	Direction Direction
	// Samples is the number of values a robust_zscore window keeps.
	Samples int
	// BaselineSamples and WarmupSamples are the floors, in samples, of
	// the baseline and the warm-up (defaults MinBaselineSamples and
	// MinWarmupSamples): with the sampling interval learnt from the
	// series, a baseline never spans fewer samples, whatever its duration.
	BaselineSamples, WarmupSamples int
}

// defaultConfig is the default settings of a type. Thresholds come from
// the quality benchmark (analyzer/quality, TestTunePerMetric): the best
// firing point-adjusted F1, averaged over SMD and ASD, of each detector on
// single metrics judged against that metric's own anomalies, on the first
// half of the test halves, the view of a rule on one signal. Baselines
// and the CUSUM k come from the machine-level grid (TestTune).
func defaultConfig(typ string) (Config, bool) {
	switch typ {
	case "zscore":
		return Config{Baseline: 4 * time.Hour, Threshold: 4}, true
	case "robust_zscore":
		return Config{Baseline: time.Hour, Threshold: 24, Samples: 64}, true
	case "ewma":
		// A floor of 12 samples (1h at 5-minute steps): 64 cost ASD at
		// 5 minutes two thirds of its firing score (mciv eval, RESULTS.md
		// session 3) for a few points on SMD.
		return Config{Baseline: time.Hour, Threshold: 6, Lambda: 0.3, BaselineSamples: 12}, true
	case "cusum":
		return Config{Baseline: time.Hour, Threshold: 8, K: 2, BaselineSamples: 12}, true
	case "auto":
		return Config{Baseline: time.Hour, Threshold: 5, BaselineSamples: 128, WarmupSamples: 32}, true
	case "seasonal":
		return Config{Baseline: 7 * 24 * time.Hour, Threshold: 8, Slot: time.Hour, Period: 24 * time.Hour}, true
	case "rate_of_change":
		return Config{Window: 15 * time.Minute, Threshold: 2}, true
	case "absence":
		return Config{For: 5 * time.Minute}, true
	}
	return Config{}, false
}

// Default returns the default configuration of a statistical detector
// type (zero Config for threshold and unknown types).
func Default(typ string) Config {
	c, _ := defaultConfig(typ)
	c.Type = typ
	return c
}

// NewSpec validates c, fills in defaults and returns the detector's Spec.
// An out-of-range option is reported as an *OptionError naming it; an
// unknown type wraps ErrUnknownType.
func NewSpec(c Config) (Spec, error) {
	if c.Type == "threshold" {
		return newThresholdSpec(c)
	}
	def, ok := defaultConfig(c.Type)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, c.Type)
	}
	s := &StatSpec{c: c}
	d := &s.c
	pos := func(opt string, v *time.Duration, dv time.Duration) error {
		if *v < 0 {
			return optErr(opt, "must not be negative")
		}
		if *v == 0 {
			*v = dv
		}
		return nil
	}
	posf := func(opt string, v *float64, dv, lo, hi float64) error {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			return optErr(opt, "must be a finite number")
		}
		if *v == 0 {
			*v = dv
		}
		if *v <= lo || *v > hi {
			return optErr(opt, "%g is out of range (%g, %g]", *v, lo, hi)
		}
		return nil
	}
	errs := []error{
		pos("baseline", &d.Baseline, def.Baseline),
		pos("window", &d.Window, def.Window),
		pos("for", &d.For, def.For),
		pos("slot", &d.Slot, def.Slot),
		pos("period", &d.Period, def.Period),
		pos("warmup", &d.Warmup, 0),
		posf("hysteresis", &d.Hysteresis, DefaultHysteresis, 0, 1),
	}
	switch c.Type {
	case "absence":
	case "auto":
		errs = append(errs, posf("threshold", &d.Threshold, def.Threshold, 0, 15))
	default:
		errs = append(errs, posf("threshold", &d.Threshold, def.Threshold, 0, 1e9))
	}
	if d.BaselineSamples == 0 {
		d.BaselineSamples = def.BaselineSamples
	}
	if d.WarmupSamples == 0 {
		d.WarmupSamples = def.WarmupSamples
	}
	if c.Type == "ewma" {
		errs = append(errs, posf("lambda", &d.Lambda, def.Lambda, 0, 1))
	}
	if c.Type == "cusum" {
		errs = append(errs, posf("k", &d.K, def.K, 0, 100))
	}
	if math.IsNaN(d.MinDelta) || math.IsInf(d.MinDelta, 0) || d.MinDelta < 0 {
		errs = append(errs, optErr("min_delta", "must be a finite number >= 0"))
	}
	if d.BaselineSamples < 0 || d.BaselineSamples > 1<<20 || d.WarmupSamples < 0 || d.WarmupSamples > 1<<20 {
		errs = append(errs, optErr("baseline_samples", "must be in [1, %d]", 1<<20))
	}
	if d.Direction == "" {
		d.Direction = Both
	} else if _, err := ParseDirection(string(d.Direction)); err != nil {
		errs = append(errs, &OptionError{Option: "direction", Err: err})
	}
	if c.Type == "robust_zscore" {
		if d.Samples == 0 {
			d.Samples = def.Samples
		}
		if d.Samples < MinSamples || d.Samples > 4096 {
			errs = append(errs, optErr("samples", "%d is out of range [%d, 4096]", d.Samples, MinSamples))
		}
	}
	if c.Type == "seasonal" {
		switch {
		case d.Slot < time.Second:
			errs = append(errs, optErr("slot", "must be at least 1s"))
		case d.Period%d.Slot != 0:
			errs = append(errs, optErr("slot", "%v does not divide the period %v", d.Slot, d.Period))
		case d.Period/d.Slot > 10080:
			errs = append(errs, optErr("slot", "%v makes %d slots per period (at most 10080)", d.Slot, d.Period/d.Slot))
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if d.Warmup == 0 {
		switch c.Type {
		case "seasonal":
			d.Warmup = d.Period / 24 // the fallback baseline's; slots wait for a whole period
		case "rate_of_change":
			d.Warmup = d.Window
		case "auto":
			// its floor in samples only
		default:
			d.Warmup = d.Baseline / 4
		}
	}
	return s, nil
}

// StatSpec is the validated configuration of a statistical detector
// (every type but threshold), built by NewSpec.
type StatSpec struct {
	c Config
}

// Config returns the configuration with defaults filled in.
func (s *StatSpec) Config() Config { return s.c }

// Type implements Spec.
func (s *StatSpec) Type() string { return s.c.Type }

// New implements Spec.
func (s *StatSpec) New() Detector {
	switch s.c.Type {
	case "zscore":
		return newZScore(s.c)
	case "robust_zscore":
		return newRobustZScore(s.c)
	case "ewma":
		return newEWMA(s.c)
	case "cusum":
		return newCUSUM(s.c)
	case "seasonal":
		return newSeasonal(s.c)
	case "auto":
		return newAuto(s.c)
	case "rate_of_change":
		return newRateOfChange(s.c)
	case "absence":
		return newAbsence(s.c)
	}
	panic("detect: StatSpec of unknown type " + s.c.Type) // NewSpec never builds one
}

// String implements Spec: the type and every setting.
func (s *StatSpec) String() string {
	c := s.c
	var b strings.Builder
	b.WriteString(c.Type)
	kv := func(k string, v any) { fmt.Fprintf(&b, " %s=%v", k, v) }
	switch c.Type {
	case "absence":
		kv("for", c.For)
		return b.String()
	case "rate_of_change":
		kv("window", c.Window)
	default:
		kv("baseline", c.Baseline)
	}
	kv("threshold", c.Threshold)
	switch c.Type {
	case "robust_zscore":
		kv("samples", c.Samples)
	case "ewma":
		kv("lambda", c.Lambda)
	case "cusum":
		kv("k", c.K)
	case "seasonal":
		kv("slot", c.Slot)
		kv("period", c.Period)
	}
	kv("warmup", c.Warmup)
	kv("direction", c.Direction)
	if c.MinDelta != 0 {
		kv("min_delta", c.MinDelta)
	}
	kv("hysteresis", c.Hysteresis)
	return b.String()
}
