package score

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestScaledSigmoid(t *testing.T) {
	for y, want := range map[float64]float64{-1: 0.98661, -0.5: 0.84828, 0: 0, 0.5: -0.84828, 1: -0.98661, 3.5: -1} {
		if got := scaledSigmoid(y); !near(got, want, 1e-5) {
			t.Errorf("scaledSigmoid(%g) = %g, want %g", y, got, want)
		}
	}
}

func TestProbation(t *testing.T) {
	for n, want := range map[int]int{100: 15, 4032: 604, 5000: 750, 22000: 750} {
		if got := Probation(n); got != want {
			t.Errorf("Probation(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestWeights(t *testing.T) {
	p := Profiles()[0]
	w, win := Weights(2000, []Window{{1000, 1402}}, p)
	if w[999] != -p.FP || win[999] != -1 {
		t.Errorf("before the window: %g %d", w[999], win[999])
	}
	if !near(w[1000], 1, 1e-12) || win[1000] != 0 || win[1402] != 0 {
		t.Errorf("left edge %g, ids %d %d", w[1000], win[1000], win[1402])
	}
	if !near(w[1402], 0.0063, 1e-4) {
		t.Errorf("right edge %g, want ≈0.0063", w[1402])
	}
	if !near(w[1403], -0.0062*p.FP, 1e-4*p.FP) || win[1403] != -1 {
		t.Errorf("just after: %g", w[1403])
	}
	if !near(w[1402+402], -0.98661*p.FP, 1e-4) {
		t.Errorf("one window later: %g", w[1804])
	}
}

func TestTally(t *testing.T) {
	wins := []Window{{500, 599}, {800, 899}}
	for _, c := range []struct {
		name     string
		detected []int
		want     float64 // normalised, standard
	}{
		{"none", nil, 0},
		{"perfect", []int{500, 800}, 100},
		{"perfect, extra in window free", []int{500, 550, 800, 899}, 100},
		{"probation ignored", []int{10, 500, 800}, 100},
		{"one window", []int{500}, 50},
		{"fp before", []int{300, 500, 800}, 100 * (2 - 0.11 + 2) / 4},
	} {
		tl := NewTally(Profiles()[0])
		tl.File(1000, wins, c.detected)
		if got := tl.Score(); !near(got, c.want, 1e-9) {
			t.Errorf("%s: %g, want %g", c.name, got, c.want)
		}
	}
	// NAB's published example: ARTime, raw 57.66075 over 116 windows.
	if got := Normalise(57.66075, 116, Profiles()[0]); !near(got, 74.854, 1e-3) {
		t.Errorf("Normalise = %g", got)
	}
	if got := Normalise(-232, 116, Profiles()[2]); got != 0 {
		t.Errorf("low-FN null = %g", got)
	}
}

func TestSweep(t *testing.T) {
	n := 1000
	wins := []Window{{500, 599}}
	a := make([]float64, n)
	b := make([]float64, n)
	a[510] = 0.9 // early in the window
	a[200] = 0.5 // a false positive at a lower score
	b[700] = 0.95
	var p Pool
	p.Add(a, wins)
	p.Add(b, nil)
	s, theta := p.Sweep(Profiles()[0])
	// θ = 0.95 detects only the FP in b (−0.11); θ = 0.9 adds the window.
	w, _ := Weights(n, wins, Profiles()[0])
	want := Normalise(w[510]-0.11-0, 1, Profiles()[0])
	if theta != 0.9 || !near(s, want, 1e-9) {
		t.Errorf("sweep %g at θ=%g, want %g at 0.9", s, theta, want)
	}
	// Nothing worth detecting: θ = +Inf, score 0.
	var q Pool
	q.Add(b, wins)
	if s, theta := q.Sweep(Profiles()[0]); s != 0 || !math.IsInf(theta, 1) {
		t.Errorf("all-FP sweep %g at %g", s, theta)
	}
}
