package detect

import (
	"fmt"
	"math"
	"time"
	"unsafe"
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

// ThresholdSpec configures a static threshold: the detector starts firing
// when "v Op Value" holds and, once firing, keeps firing while "v Op Clear"
// holds. Clear nil means Value (no hysteresis); it is a pointer so that
// specs without it compare equal to ThresholdSpec{Op: op, Value: v}.
type ThresholdSpec struct {
	Op    Op
	Value float64
	Clear *float64
}

// clear is the level below which (for > and >=) a firing threshold clears.
func (s ThresholdSpec) clear() float64 {
	if s.Clear != nil {
		return *s.Clear
	}
	return s.Value
}

// newThresholdSpec validates the threshold part of a Config.
func newThresholdSpec(c Config) (Spec, error) {
	op, err := ParseOp(string(c.Op))
	if err != nil {
		return nil, &OptionError{Option: "op", Err: err}
	}
	if math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
		return nil, optErr("value", "%v is not a finite number", c.Value)
	}
	s := ThresholdSpec{Op: op, Value: c.Value}
	if c.Clear != nil && *c.Clear != c.Value {
		cl := *c.Clear
		switch {
		case math.IsNaN(cl) || math.IsInf(cl, 0):
			return nil, optErr("clear", "%v is not a finite number", cl)
		case (op == OpGT || op == OpGE) && cl > c.Value:
			return nil, optErr("clear", "%g must not be above the value %g for %s", cl, c.Value, op)
		case (op == OpLT || op == OpLE) && cl < c.Value:
			return nil, optErr("clear", "%g must not be below the value %g for %s", cl, c.Value, op)
		}
		s.Clear = &cl
	}
	return s, nil
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
func (s ThresholdSpec) String() string {
	if s.Clear != nil {
		return fmt.Sprintf("threshold %s %g clear %g", s.Op, s.Value, *s.Clear)
	}
	return fmt.Sprintf("threshold %s %g", s.Op, s.Value)
}

// Threshold is a static threshold detector. Its only history is whether
// it is firing (for hysteresis) and the count of ignored values: 48 bytes.
type Threshold struct {
	spec    ThresholdSpec
	firing  bool
	ignored uint64
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
// A value that does not fire scores 0. NaN is ignored (counted, the
// firing state kept, score 0); infinities are compared like other values.
func (d *Threshold) Observe(_ time.Time, v float64) Result {
	r := Result{Threshold: d.spec.Value}
	if math.IsNaN(v) {
		d.ignored++
		r.Firing = d.firing
		return r
	}
	limit := d.spec.Value
	if d.firing {
		limit = d.spec.clear()
	}
	d.firing = d.spec.Op.compare(v, limit)
	if !d.firing {
		return r
	}
	r.Firing = true
	if d.spec.Op.compare(v, d.spec.Value) {
		r.Score = normalisedDistance(v, d.spec.Value)
	}
	return r
}

// Size implements Sizer.
func (d *Threshold) Size() int { return int(unsafe.Sizeof(*d)) }

// Ignored implements Ignorer.
func (d *Threshold) Ignored() uint64 { return d.ignored }

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
