package quality

import (
	"math"
	"testing"
)

func bools(s string) []bool {
	out := make([]bool, len(s))
	for i, c := range s {
		out[i] = c == '1'
	}
	return out
}

func TestPointAdjusted(t *testing.T) {
	for _, tc := range []struct {
		det, lab string
		want     Counts
	}{
		{"0000000000", "0011100110", Counts{0, 0, 5}},
		{"0001000000", "0011100110", Counts{3, 0, 2}},
		{"1001000010", "0011100110", Counts{5, 1, 0}},
		{"1111111111", "0000000000", Counts{0, 10, 0}},
	} {
		if got := PointAdjusted(bools(tc.det), bools(tc.lab)); got != tc.want {
			t.Errorf("%s on %s: %+v, want %+v", tc.det, tc.lab, got, tc.want)
		}
	}
	c := Counts{TP: 5, FP: 1, FN: 0}
	if math.Abs(c.F1()-10.0/11) > 1e-12 || c.Precision() != 5.0/6 || c.Recall() != 1 {
		t.Fatalf("F1 %v P %v R %v", c.F1(), c.Precision(), c.Recall())
	}
}

func TestBestPointAdjusted(t *testing.T) {
	lab := bools("0011100110")
	scores := []float64{0.1, 0.2, 0.3, 0.9, 0.1, 0.2, 0.1, 0.4, 0.1, 0.5}
	items, total := paItems(scores, lab)
	best, theta := BestPointAdjusted(items, total)
	// θ=0.9: segment 1 (3 rows) found, no FP: F1 = 6/8. θ=0.4: both
	// segments, no FP (0.5 is a labelled... no: row 9 is unlabelled) →
	// θ=0.4 gives TP 5, FP 1 (row 9, 0.5): F1 = 10/11.
	if best != (Counts{TP: 5, FP: 1, FN: 0}) || theta != 0.4 {
		t.Fatalf("best %+v at %v", best, theta)
	}
}

func TestNAB(t *testing.T) {
	if got := scaledSigmoid(-1); math.Abs(got-0.9866142981514305) > 1e-12 {
		t.Fatalf("scaledSigmoid(-1) = %v", got)
	}
	if got := scaledSigmoid(0.5); math.Abs(got+0.84828) > 1e-5 {
		t.Fatalf("scaledSigmoid(0.5) = %v", got)
	}
	lab := bools("0000011111000000000011111000")
	none := make([]float64, len(lab))
	rows, w := nabRows(none, lab, 0)
	if w != 2 {
		t.Fatalf("%d windows", w)
	}
	// The first row of a window is worth exactly 1; a detection before any
	// window costs A_FP.
	if math.Abs(rows[5].weight-1) > 1e-12 || rows[0].weight != -nabFP || rows[9].window != 0 || rows[10].window != -1 {
		t.Fatalf("rows %+v", rows[:11])
	}
	perfect := nabScore(rows, w, func(i int) bool { return i == 5 || i == 20 })
	if got := nabNormalise(perfect, w); math.Abs(got-100) > 1e-9 {
		t.Fatalf("perfect = %v", got)
	}
	if got := nabNormalise(nabScore(rows, w, func(int) bool { return false }), w); got != 0 {
		t.Fatalf("null = %v", got)
	}
	// A late detection is worth less than an early one, and FPs cost.
	late := nabNormalise(nabScore(rows, w, func(i int) bool { return i == 9 || i == 24 }), w)
	fp := nabNormalise(nabScore(rows, w, func(i int) bool { return i == 5 || i == 20 || i == 2 }), w)
	if !(late > 50 && late < 80) || !(fp < 100 && fp > 90) {
		t.Fatalf("late %v fp %v", late, fp)
	}
	// The sweep finds the perfect threshold.
	scores := make([]float64, len(lab))
	scores[5], scores[20], scores[2] = 0.9, 0.9, 0.5
	rows, w = nabRows(scores, lab, 0)
	raw, theta := bestNAB(rows, w)
	if math.Abs(nabNormalise(raw, w)-100) > 1e-9 || theta != 0.9 {
		t.Fatalf("best %v at %v", nabNormalise(raw, w), theta)
	}
}

func TestSegments(t *testing.T) {
	got := segments(bools("1100111010"))
	want := [][2]int{{0, 1}, {4, 6}, {8, 8}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%v", got)
		}
	}
}
