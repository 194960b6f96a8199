package score

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestFromLabels(t *testing.T) {
	n := 2000
	lab := make([]bool, n)
	lab[100] = true // inside the probation (300 rows): dropped
	for i := 1000; i < 1010; i++ {
		lab[i] = true
	}
	for i := 1500; i < 1700; i++ {
		lab[i] = true // longer than a window: the window is stretched
	}
	t0 := time.Unix(0, 0)
	s := FromLabels("x.csv", t0, time.Minute, make([]float64, n), lab)
	// 3 anomalies: width int(200/3) = 66.
	want := []Window{{967, 1033}, {1467, 1699}}
	if !slices.Equal(s.Windows, want) {
		t.Errorf("windows %v, want %v", s.Windows, want)
	}
	if s.Times[1]-s.Times[0] != int64(time.Minute) {
		t.Error("times")
	}
	// Overlapping windows merge.
	lab2 := make([]bool, n)
	lab2[1000], lab2[1020] = true, true
	if s := FromLabels("y", t0, time.Minute, make([]float64, n), lab2); !slices.Equal(s.Windows, []Window{{950, 1070}}) {
		t.Errorf("merged %v", s.Windows)
	}
}

func TestResample(t *testing.T) {
	v := []float64{1, 3, 5, math.NaN(), 7, 9}
	l := []bool{false, false, false, true, false, false}
	nv, nl := Resample(v, l, time.Minute, 2*time.Minute)
	if !slices.Equal(nv, []float64{2, 5, 8}) || !slices.Equal(nl, []bool{false, true, false}) {
		t.Errorf("down: %v %v", nv, nl)
	}
	uv, ul := Resample([]float64{0, 10}, []bool{true, false}, 5*time.Minute, time.Minute)
	if !slices.Equal(uv, []float64{0, 2, 4, 6, 8, 10, 10, 10, 10, 10}) || !ul[4] || ul[5] {
		t.Errorf("up: %v %v", uv, ul)
	}
}
