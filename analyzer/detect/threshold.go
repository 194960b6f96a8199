package detect

import (
	"fmt"
	"math"
	"time"
)

// Op is a comparison operator of a static threshold.
type Op string

// Comparison operators.
const (
	OpGT Op = ">"
	OpGE Op = ">="
	OpLT Op = "<"
	OpLE Op = "<="
)

// ParseOp checks that s is one of the comparison operators.
func ParseOp(s string) (Op, error) {
	switch op := Op(s); op {
	case OpGT, OpGE, OpLT, OpLE:
		return op, nil
	}
	return "", fmt.Errorf("unknown operator %q (one of >, >=, <, <=)", s)
}

// compare reports whether "v op limit" holds. NaN compares false.
func (op Op) compare(v, limit float64) bool {
	switch op {
	case OpGT:
		return v > limit
	case OpGE:
		return v >= limit
	case OpLT:
		return v < limit
	case OpLE:
		return v <= limit
	}
	return false
}

// ThresholdSpec configures a static threshold: the detector fires while
// "value Op Value" holds.
type ThresholdSpec struct {
	Op    Op
	Value float64
}

// NewThresholdSpec validates a threshold configuration.
func NewThresholdSpec(op Op, value float64) (ThresholdSpec, error) {
	if _, err := ParseOp(string(op)); err != nil {
		return ThresholdSpec{}, err
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return ThresholdSpec{}, fmt.Errorf("threshold value %v is not a finite number", value)
	}
	return ThresholdSpec{Op: op, Value: value}, nil
}

// Type implements Spec.
func (s ThresholdSpec) Type() string { return "threshold" }

// New implements Spec.
func (s ThresholdSpec) New() Detector { return &Threshold{spec: s} }

// String implements Spec.
func (s ThresholdSpec) String() string { return fmt.Sprintf("threshold %s %g", s.Op, s.Value) }

// Threshold is a static threshold detector. It keeps no history.
type Threshold struct {
	spec ThresholdSpec
}

// NewThreshold returns a threshold detector firing while "v op value".
func NewThreshold(op Op, value float64) (*Threshold, error) {
	s, err := NewThresholdSpec(op, value)
	if err != nil {
		return nil, err
	}
	return &Threshold{spec: s}, nil
}

// Observe implements Detector. The score of a value past the threshold is
// its distance from the threshold relative to both magnitudes,
// |v-T| / (|v|+|T|): just past the threshold it is near 0, at twice the
// threshold 1/3, at ten times 9/11, and it is 1 whenever the threshold is 0.
// A value that does not fire scores 0, and so does NaN.
func (d *Threshold) Observe(_ time.Time, v float64) Result {
	r := Result{Threshold: d.spec.Value}
	if !d.spec.Op.compare(v, d.spec.Value) {
		return r
	}
	r.Firing = true
	r.Score = normalisedDistance(v, d.spec.Value)
	return r
}

// normalisedDistance is |v-t| / (|v|+|t|) in [0,1], with infinities
// scoring 1 and 0/0 scoring 0.
func normalisedDistance(v, t float64) float64 {
	if math.IsInf(v, 0) {
		return 1
	}
	den := math.Abs(v) + math.Abs(t)
	if den == 0 || math.IsInf(den, 0) {
		return 0
	}
	s := math.Abs(v-t) / den
	return math.Min(1, math.Max(0, s))
}
