package detect

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewSpecDefaults(t *testing.T) {
	for _, typ := range Types() {
		if typ == "threshold" {
			continue
		}
		s := mustSpec(t, Config{Type: typ})
		if s.Type() != typ || !strings.HasPrefix(s.String(), typ+" ") {
			t.Errorf("%s: type %q string %q", typ, s.Type(), s.String())
		}
		c := s.(*StatSpec).Config()
		if typ != "absence" && (c.Threshold <= 0 || c.Hysteresis != DefaultHysteresis || c.Direction != Both || (c.Warmup <= 0 && typ != "auto")) { // auto warms up in samples only
			t.Errorf("%s: defaults not filled: %+v", typ, c)
		}
		if Options(typ) == nil {
			t.Errorf("%s: no options", typ)
		}
		if _, ok := s.New().(Sizer); !ok {
			t.Errorf("%s: detector is not a Sizer", typ)
		}
	}
	if got := mustSpec(t, Config{Type: "seasonal"}).(*StatSpec).Config().Warmup; got != time.Hour {
		t.Errorf("seasonal warmup %v, want a 24th of the period (its fallback baseline's)", got)
	}
	if _, ok := mustSpec(t, Config{Type: "absence"}).New().(Ticker); !ok {
		t.Error("absence is not a Ticker")
	}
}

func TestNewSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		c      Config
		option string
	}{
		{Config{Type: "zscore", Threshold: -1}, "threshold"},
		{Config{Type: "zscore", Baseline: -time.Second}, "baseline"},
		{Config{Type: "zscore", Hysteresis: 2}, "hysteresis"},
		{Config{Type: "zscore", Direction: "left"}, "direction"},
		{Config{Type: "zscore", MinDelta: -1}, "min_delta"},
		{Config{Type: "ewma", Lambda: 1.5}, "lambda"},
		{Config{Type: "cusum", K: -1}, "k"},
		{Config{Type: "robust_zscore", Samples: 3}, "samples"},
		{Config{Type: "seasonal", Slot: 7 * time.Minute}, "slot"},
		{Config{Type: "seasonal", Slot: time.Millisecond}, "slot"},
		{Config{Type: "threshold", Op: "=", Value: 1}, "op"},
		{Config{Type: "threshold", Op: OpLT, Value: 1, Clear: new(0.5)}, "clear"},
	} {
		_, err := NewSpec(tc.c)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Option != tc.option {
			t.Errorf("%+v: error %v, want one about %s", tc.c, err, tc.option)
		}
	}
	if _, err := NewSpec(Config{Type: "magic"}); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
}

func TestThresholdHysteresis(t *testing.T) {
	s := mustSpec(t, Config{Type: "threshold", Op: OpGT, Value: 10, Clear: new(8.0)})
	if s.String() != "threshold > 10 clear 8" {
		t.Fatalf("string %q", s.String())
	}
	d := s.New()
	for i, tc := range []struct {
		v      float64
		firing bool
	}{{9, false}, {11, true}, {9, true}, {10.5, true}, {8.5, true}, {8, false}, {9.9, false}, {10.1, true}} {
		if r := d.Observe(t0, tc.v); r.Firing != tc.firing {
			t.Fatalf("step %d (%v): firing %v", i, tc.v, r.Firing)
		}
	}
	// Equal clear and value means no hysteresis, and the plain spec.
	if s := mustSpec(t, Config{Type: "threshold", Op: OpGT, Value: 10, Clear: new(10.0)}); s != (ThresholdSpec{Op: OpGT, Value: 10}) {
		t.Fatalf("spec %v", s)
	}
}
