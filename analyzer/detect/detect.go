// Package detect holds mciv's anomaly detectors: pure, streaming state
// machines that are fed one value per interval and say whether that value is
// anomalous. Nothing here does I/O or reads the clock; time is whatever the
// caller passes in, so detectors behave the same live, in replays and in
// rule unit tests.
//
// A Spec is the validated configuration of a detector as written in a rules
// file; Spec.New builds a fresh Detector from it, one per alert group (rule
// and label set), so that every group keeps its own baseline.
package detect

import "time"

// Detector judges a stream of values, one per interval, in time order.
// Implementations are not safe for concurrent use.
type Detector interface {
	// Observe feeds the value v measured at time t and returns the verdict
	// on it. A non-finite v must not corrupt the detector's state.
	Observe(t time.Time, v float64) Result
}

// Result is a detector's verdict on one value.
type Result struct {
	// Firing is true when the value is anomalous.
	Firing bool
	// Score says how anomalous the value is, normalised to [0,1]:
	// 0 for a normal value, approaching 1 the further the value is past
	// the detector's limit. Scores of different detectors are comparable
	// only in their ordering.
	Score float64
	// Threshold is the limit the value was compared with.
	Threshold float64
	// Baseline is the value the detector expected (0 for detectors that
	// have no baseline, such as a static threshold).
	Baseline float64
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
