// Package detect holds mciv's anomaly detectors: pure, streaming state
// machines that are fed one value per interval and say whether that value is
// anomalous. Nothing here does I/O or reads the clock; time is whatever the
// caller passes in, so detectors behave the same live, in replays and in
// rule unit tests.
//
// A Spec is the validated configuration of a detector as written in a rules
// file; Spec.New builds a fresh Detector from it, one per alert group (rule
// and label set), so that every group keeps its own baseline.
//
// # Common behaviour of the statistical detectors
//
// auto, zscore, robust_zscore, ewma, cusum, seasonal and rate_of_change
// share:
//
//   - Time, and samples. Durations (baseline, warmup, window, slot)
//     are kept as time. Exponentially weighted (EW) statistics use the
//     weight alpha = 1-exp(-Δt/baseline) for a sample Δt after the previous
//     one (with alpha >= 1/n for the first n samples, so that a young
//     baseline is the plain mean), so gaps and irregular sampling are
//     treated correctly. Each detector also learns the series' sampling
//     interval, and a baseline never spans fewer than baseline_samples
//     intervals (default MinBaselineSamples; 128 for auto, 12 for
//     ewma and cusum): "30m" at 5-minute steps is not 6 samples. Time
//     that goes backwards counts as Δt = 0.
//   - Warm-up. A detector cannot fire, and scores 0, until warmup has
//     passed since its first finite sample and it has seen at least
//     warmup_samples finite samples (default MinWarmupSamples; 64 for
//     auto; more for the windowed detectors).
//   - Deviation. Each detector turns a value into a deviation z in units of
//     its own scale (standard deviations, MADs, CUSUM sums, relative
//     change), taken in the configured direction: up counts only values
//     above the baseline, down only values below it, both either side.
//     A value within min_delta of the baseline (absolute, in the value's
//     unit) has z = 0: tiny-variance series do not fire on noise.
//   - Score. The score is calibrated: 1-p, where p is the tail
//     probability of the deviation against the detector's own history of
//     deviations (see calib), never rarer than a Gaussian tail with the
//     threshold at 5 sigma. 0.999 means a one-in-a-thousand deviation on
//     any metric and for any detector, so one score threshold means the
//     same everywhere.
//   - Hysteresis. A detector starts firing when z >= threshold and stops
//     only when z < threshold*hysteresis (default 0.75), so a series
//     oscillating around the threshold does not flap.
//   - Non-finite values (NaN, ±Inf) are ignored: they change no state,
//     return the current firing state with score 0, and are counted
//     (see Ignorer).
//   - Robust learning. Once warm, the value that updates an EW baseline is
//     clamped to baseline ± threshold·scale, so a spike barely moves the
//     baseline while a lasting level shift is still learned within about
//     one baseline.
package detect

import (
	"errors"
	"fmt"
	"time"
)

// Detector judges a stream of values, one per interval, in time order.
// Implementations are not safe for concurrent use.
type Detector interface {
	// Observe feeds the value v measured at time t and returns the verdict
	// on it. A non-finite v must not corrupt the detector's state.
	Observe(t time.Time, v float64) Result
}

// Ticker is implemented by detectors that judge the passing of time
// itself, such as Absence. An engine that keeps such a detector should
// call Tick at every evaluation in which the series got no sample (it may
// also call it when it did; Tick never changes the baseline). Detectors
// that do not implement Ticker need no ticks.
type Ticker interface {
	// Tick returns the verdict at time t given the samples observed so far.
	Tick(t time.Time) Result
}

// Sizer is implemented by every detector of this package: Size is the
// number of bytes of the detector's state, including what its slices
// hold. It is constant for the life of a detector (memory is bounded).
type Sizer interface {
	Size() int
}

// Ignorer is implemented by every detector of this package: Ignored is
// the number of non-finite values it was fed and ignored.
type Ignorer interface {
	Ignored() uint64
}

// Result is a detector's verdict on one value.
type Result struct {
	// Firing is true when the value is anomalous.
	Firing bool
	// Score is 1-p, where p is the calibrated tail probability of the
	// value's deviation: how often the detector saw a deviation at least
	// this large in its own history (see calib). 0 for a normal value,
	// 0.999 for a one-in-a-thousand deviation, whatever the metric or the
	// detector, so one score threshold means the same everywhere. The
	// static threshold detector keeps its distance mapping.
	Score float64
	// Threshold is the limit the value was compared with, in the value's
	// unit (for absence: the allowed silence in seconds).
	Threshold float64
	// Baseline is the value the detector expected (0 for detectors that
	// have no baseline, such as a static threshold).
	Baseline float64
	// Kind names the kind of anomaly the score is evidence of ("level
	// shift", "drift", ...; see KindSpike): set by auto, "" otherwise.
	Kind string
	// Lead, at the onset of a firing, is how long the anomaly had
	// already been under way by the detector's judgement: auto sets it
	// to the time its firing sample covers (see Auto), so that a rule's
	// `for` counts from there (lifecycle.Alert.StepSince). 0 otherwise.
	Lead time.Duration
}

// Spec is the validated configuration of one kind of detector.
type Spec interface {
	// Type is the detector type as written in rules files ("threshold").
	Type() string
	// New returns a fresh detector with no history.
	New() Detector
	// String describes the configuration for logs and rule listings.
	String() string
}

// Direction says which deviations from the baseline count.
type Direction string

// Directions.
const (
	Up   Direction = "up"
	Down Direction = "down"
	Both Direction = "both"
)

// ParseDirection checks that s is up, down or both.
func ParseDirection(s string) (Direction, error) {
	switch d := Direction(s); d {
	case Up, Down, Both:
		return d, nil
	}
	return "", fmt.Errorf("unknown direction %q (one of up, down, both)", s)
}

// OptionError is a detector option that is out of range or does not apply.
type OptionError struct {
	// Option is the option's name as written in rules files.
	Option string
	Err    error
}

// Error names the option.
func (e *OptionError) Error() string { return e.Option + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *OptionError) Unwrap() error { return e.Err }

func optErr(opt, format string, args ...any) error {
	return &OptionError{Option: opt, Err: fmt.Errorf(format, args...)}
}

// ErrUnknownType is returned by NewSpec for a type it does not know.
var ErrUnknownType = errors.New("unknown detector type")

// Defaults of the statistical detectors (see DESIGN and the quality
// benchmark for how they were chosen).
const (
	DefaultHysteresis = 0.75
	// MinSamples is the fewest finite samples a statistical detector
	// needs before it may fire, whatever its warmup.
	MinSamples = 8
	// MinBaselineSamples is the floor of a baseline in samples: a
	// baseline written as a duration holds at least this many sampling
	// intervals (learnt from the series), whatever the interval.
	MinBaselineSamples = 64
	// MinWarmupSamples is the floor of the warm-up in samples.
	MinWarmupSamples = 16
)
