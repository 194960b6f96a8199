package detect

import (
	"math"
	"testing"
	"time"
)

func TestThreshold(t *testing.T) {
	at := time.Unix(0, 0)
	for _, tc := range []struct {
		op        Op
		limit, v  float64
		firing    bool
		wantScore float64
	}{
		{OpGT, 5, 4, false, 0},
		{OpGT, 5, 5, false, 0},
		{OpGT, 5, 10, true, 1.0 / 3},
		{OpGT, 5, 50, true, 45.0 / 55},
		{OpGE, 5, 5, true, 0},
		{OpGE, 5, 4.9, false, 0},
		{OpLT, 5, 1, true, 4.0 / 6},
		{OpLT, 5, 5, false, 0},
		{OpLE, 5, 5, true, 0},
		{OpLE, 5, 0, true, 1},
		{OpGT, 0, 3, true, 1},
		{OpLT, 0, -2, true, 1},
		{OpGT, -4, -2, true, 2.0 / 6},
		{OpGT, 5, math.Inf(1), true, 1},
		{OpLT, 5, math.Inf(-1), true, 1},
		{OpGT, 5, math.NaN(), false, 0},
		{OpLT, 5, math.NaN(), false, 0},
	} {
		d, err := NewThreshold(tc.op, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		r := d.Observe(at, tc.v)
		if r.Firing != tc.firing || math.Abs(r.Score-tc.wantScore) > 1e-12 || r.Threshold != tc.limit || r.Baseline != 0 {
			t.Errorf("%v %s %v: got %+v, want firing=%v score=%v", tc.v, tc.op, tc.limit, r, tc.firing, tc.wantScore)
		}
		if r.Score < 0 || r.Score > 1 {
			t.Errorf("%v %s %v: score %v outside [0,1]", tc.v, tc.op, tc.limit, r.Score)
		}
	}
}

func TestThresholdScoreGrowsWithDistance(t *testing.T) {
	d, _ := NewThreshold(OpGT, 5)
	prev := 0.0
	for v := 5.5; v < 1e6; v *= 2 {
		s := d.Observe(time.Time{}, v).Score
		if s <= prev {
			t.Fatalf("score %v at %v is not above %v", s, v, prev)
		}
		prev = s
	}
}

func TestThresholdSpec(t *testing.T) {
	s, err := NewThresholdSpec(OpGE, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Type() != "threshold" || s.String() != "threshold >= 2" {
		t.Fatalf("got %q %q", s.Type(), s.String())
	}
	var _ Spec = s
	if !s.New().Observe(time.Time{}, 2).Firing {
		t.Fatal("2 >= 2 did not fire")
	}
	for _, bad := range []struct {
		op Op
		v  float64
	}{{"==", 1}, {"", 1}, {OpGT, math.NaN()}, {OpLT, math.Inf(1)}} {
		if _, err := NewThresholdSpec(bad.op, bad.v); err == nil {
			t.Errorf("NewThresholdSpec(%q, %v): want error", bad.op, bad.v)
		}
	}
	if _, err := ParseOp(">="); err != nil {
		t.Fatal(err)
	}
}
