package detect

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestCalibGaussianHistory(t *testing.T) {
	var c calib
	r := rand.New(rand.NewPCG(3, 3))
	for range 20000 {
		c.add(math.Abs(r.NormFloat64()), false)
	}
	// Against a history of |N(0,1)|, tail probabilities are the normal's
	// (within the histogram's resolution of three bins per octave, and
	// never below them).
	for _, d := range []float64{0.5, 1, 2, 3} {
		want := math.Erfc(d / math.Sqrt2)
		if got := c.tail(d); got < want || got > want*1.6 {
			t.Errorf("tail(%g) = %g, want ≈ %g", d, got, want)
		}
	}
	if got := c.tail(6); got != math.Erfc(6/math.Sqrt2) {
		t.Errorf("beyond the history: %g, want the Gaussian tail", got)
	}
	if got := c.tail(40); got != pFloor {
		t.Errorf("far beyond: %g, want the floor", got)
	}
	if c.tail(0) != 1 || c.tail(4) >= c.tail(3) {
		t.Error("tail is not a decreasing probability")
	}
}

func TestCalibHeavyHistory(t *testing.T) {
	// A history where 5 % of deviations are 6: a 6 is not rare here.
	var c calib
	for i := range 4000 {
		d := 0.5
		if i%20 == 0 {
			d = 6
		}
		c.add(d, false)
	}
	if got := c.tail(4.5); got < 0.045 || got > 0.055 {
		t.Errorf("tail(4.5) = %g, want ≈ 0.05", got)
	}
	// Deviations seen while firing barely count.
	var f calib
	for range 4000 {
		f.add(0.5, false)
	}
	for range 100 {
		f.add(6, true)
	}
	if got := f.tail(4.5); got > 1e-4 {
		t.Errorf("firing deviations count: tail(4.5) = %g, want ≈ 0 (0.024 if they counted)", got)
	}
}

func TestCalibYoung(t *testing.T) {
	var c calib
	for range calibMinN - 1 {
		c.add(10, false)
	}
	if got, want := c.tail(3), math.Erfc(3/math.Sqrt2); got != want {
		t.Errorf("young history: %g, want the Gaussian %g", got, want)
	}
}

func TestCalibFittedTail(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	// A history of Exp(1) deviations (a Laplace-like metric): its largest
	// in 4 000 is about 8.
	var c calib
	for range 4000 {
		c.add(r.ExpFloat64(), false)
	}
	// Beyond the history, the Gaussian prior calls 12 a 1e-33 event; the
	// tail fitted to the history's largest deviations knows it is not
	// (the true share is e^-12 = 6e-6; the Gaussian-shaped fit is lighter
	// than an exponential one, so below it).
	if got := c.tail(12); got != pFloor {
		t.Fatalf("tail(12) = %g, want the floor (the Gaussian prior)", got)
	}
	if got := c.tailFitted(12); got < 1e-10 || got > math.Exp(-12) {
		t.Errorf("tailFitted(12) = %g, want between 1e-10 and e^-12", got)
	}
	if got := c.tailFitted(16); got >= c.tailFitted(12) || got <= pFloor {
		t.Errorf("tailFitted(16) = %g: not below tailFitted(12) = %g, or at the floor", got, c.tailFitted(12))
	}
	// Inside the history's bulk the fit changes nothing.
	for _, d := range []float64{0.5, 1, 2, 3} {
		if got, want := c.tailFitted(d), c.tail(d); got != want {
			t.Errorf("tailFitted(%g) = %g, want tail's %g", d, got, want)
		}
	}

	// A Gaussian history: the fit is the normal tail's shape, somewhat
	// heavier (its bins are a third of an octave wide): at 6σ within three
	// nines of the normal's 2e-9, and far below what an exponential fit
	// would say.
	var g calib
	for range 20000 {
		g.add(math.Abs(r.NormFloat64()), false)
	}
	if got, normal := g.tailFitted(6), math.Erfc(6/math.Sqrt2); got < normal || got > 1000*normal {
		t.Errorf("Gaussian history: tailFitted(6) = %g, want within three nines above %g", got, normal)
	}

	// A young history (fewer than calibFitN/calibFitShare samples) is
	// judged by the Gaussian prior, as before.
	var y calib
	for range int(calibFitN/calibFitShare) - 50 {
		y.add(r.ExpFloat64(), false)
	}
	if got, want := y.tailFitted(12), y.tail(12); got != want {
		t.Errorf("young history: tailFitted(12) = %g, want tail's %g", got, want)
	}
}
