package score

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// noiseSeries is n rows of unit Gaussian noise around 100 from seed,
// labelled where label says.
func noiseSeries(name string, seed uint64, n int, label func(i int) bool) Series {
	rnd := rand.New(rand.NewPCG(seed, 7))
	values := make([]float64, n)
	labels := make([]bool, n)
	for i := range n {
		values[i] = 100 + rnd.NormFloat64()
		labels[i] = label(i)
	}
	return FromLabels(name, time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), time.Minute, values, labels)
}

// spikeCorpus is eight series of 2000 rows of noise, each with two
// spikes of 30σ, each labelled at its row (a window of NAB's width around
// it). Sixteen windows: with fewer, random's swept score, the best of
// many thresholds over a handful of windows, climbs towards 40.
func spikeCorpus() *Corpus {
	c := &Corpus{Name: "spikes"}
	for k := range 8 {
		at := []int{700 + 37*k, 1300 + 37*k}
		s := noiseSeries(fmt.Sprintf("spike%d.csv", k), uint64(k+1), 2000, func(i int) bool { return slices.Contains(at, i) })
		for _, i := range at {
			s.Values[i] += 30
		}
		c.Series = append(c.Series, s)
	}
	return c
}

// lenientCorpus is four series of 2000 rows of noise labelled in long
// runs, whose windows cover nearly every scored row.
func lenientCorpus() *Corpus {
	c := &Corpus{Name: "lenient"}
	for k := range 4 {
		s := noiseSeries(fmt.Sprintf("runs%d.csv", k), uint64(k+10), 2000, func(i int) bool {
			return (i >= 400 && i < 1100) || i >= 1200
		})
		c.Series = append(c.Series, s)
	}
	return c
}

func referenceRows(t *testing.T, res []Result) map[string]Result {
	t.Helper()
	m := map[string]Result{}
	for _, r := range res {
		m[r.Name] = r
	}
	if len(res) != 2 || len(m) != 2 {
		t.Fatalf("want the two reference rows, got %+v", res)
	}
	return m
}

// TestReferenceSpikes: on spikes of 30σ in noise the windowed Gaussian
// finds every window and random does not.
func TestReferenceSpikes(t *testing.T) {
	c := spikeCorpus()
	res, err := Reference(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	rows := referenceRows(t, res)
	gauss, random := rows[ReferenceWindowedGaussian], rows[ReferenceRandom]
	if gauss.Swept[0] <= 80 {
		t.Errorf("windowed gaussian swept %.1f on 30σ spikes, want > 80", gauss.Swept[0])
	}
	if random.Swept[0] >= 40 {
		t.Errorf("random swept %.1f on 30σ spikes, want < 40", random.Swept[0])
	}
	for _, r := range res {
		if !math.IsNaN(r.Onsets[0]) || !math.IsNaN(r.Onsets[1]) || !math.IsNaN(r.Onsets[2]) || r.Pages != -1 || r.TP != -1 || r.Series != len(c.Series) {
			t.Errorf("%s: onsets, pages and windows found must say not applicable: %+v", r.Name, r)
		}
	}
	if r := random; !math.IsNaN(r.Theta[0]) || r.Detector != "random" {
		t.Errorf("random: %+v", r)
	}
	// The spikes are 30σ; the noise reaches about 4σ.
	if r := gauss; r.Theta[0] < 10 || r.Theta[0] > 40 || r.Detector != "windowed_gaussian" {
		t.Errorf("windowed gaussian: %+v", r)
	}
}

// TestReferenceRandomOnLenientWindows: when windows cover nearly every
// row, scores with no skill score high; the random row is there to show
// it.
func TestReferenceRandomOnLenientWindows(t *testing.T) {
	res, err := Reference(context.Background(), lenientCorpus())
	if err != nil {
		t.Fatal(err)
	}
	if r := referenceRows(t, res)[ReferenceRandom]; r.Swept[0] <= 50 {
		t.Errorf("random swept %.1f on windows covering nearly every row, want > 50", r.Swept[0])
	}
}

// TestReferenceDeterministic: the same corpus gives the same rows, and
// random's score is the mean of its seeds'.
func TestReferenceDeterministic(t *testing.T) {
	c := spikeCorpus()
	a, err := Reference(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Reference(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	// %v, not reflect.DeepEqual: NaN is not equal to itself.
	if fmt.Sprintf("%v", a) != fmt.Sprintf("%v", b) {
		t.Errorf("two calls differ:\n%v\n%v", a, b)
	}
	var mean [3]float64
	var differ bool
	first, _ := randomSwept(context.Background(), c, 1)
	for seed := uint64(1); seed <= randomSeeds; seed++ {
		s, err := randomSwept(context.Background(), c, seed)
		if err != nil {
			t.Fatal(err)
		}
		differ = differ || s != first
		for i := range s {
			mean[i] += s[i] / randomSeeds
		}
	}
	if got := referenceRows(t, a)[ReferenceRandom].Swept; got != mean {
		t.Errorf("random swept %v, want the mean of its seeds %v", got, mean)
	}
	if !differ {
		t.Error("every seed scored the same: the seeds do not reach the PCG")
	}
}

// TestReferenceCancelled: a done context stops Reference with its error.
func TestReferenceCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Reference(ctx, spikeCorpus())
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("cancelled: %v, %d rows", err, len(res))
	}
	if !strings.Contains(err.Error(), "reference spikes") {
		t.Errorf("error %q does not name the corpus", err)
	}
}

// The windowed Gaussian's window, written out here so that a change of
// the constants fails the tests: 6400 values, sliding by 100.
const (
	testWindowSize = 6400
	testWindowStep = 100
)

// TestGaussianWindowSlidesInSteps: once the window is full, a new level
// enters it only 100 values at a time: the first 100 rows of the level
// all score as against the old window, and the mean moves at every 100th
// value and only then, until the level fills the window.
func TestGaussianWindowSlidesInSteps(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var w gaussianWindow
	for range testWindowSize {
		w.add(0.01 * rnd.NormFloat64())
	}
	const level = 1.0
	first := w.score(level)
	if first < 50 {
		t.Fatalf("a level 100σ away scores %g", first)
	}
	for k := range testWindowSize {
		before, score := w.mean, w.score(level)
		if k < testWindowStep && score != first {
			t.Fatalf("row %d of the new level scores %g, the first %g: the window moved before 100 values", k, score, first)
		}
		w.add(level)
		entered := (k+1)%testWindowStep == 0
		if moved := w.mean != before; moved != entered {
			t.Fatalf("after %d values of the new level the mean moved %t (%g -> %g), want %t", k+1, moved, before, w.mean, entered)
		}
	}
	// The level fills the window: its sd is 0 and it scores 0; anything
	// else is infinitely far.
	if s := w.score(level); s != 0 || w.mean != level {
		t.Errorf("after the level filled the window: mean %g, score %g", w.mean, s)
	}
	if s := w.score(level + 1e-9); !math.IsInf(s, 1) {
		t.Errorf("off a flat window: %g, want +Inf", s)
	}
}

// TestWindowedGaussianScores: each row scores |v − mean| / sd of the
// window (every earlier value while growing, then the window slid by
// whole steps), NaN rows score NaN and are skipped as if absent.
func TestWindowedGaussianScores(t *testing.T) {
	const n = testWindowSize + 3*testWindowStep + 50
	rnd := rand.New(rand.NewPCG(5, 6))
	clean := make([]float64, n)
	for i := range clean {
		clean[i] = 1e6 + rnd.NormFloat64() // far from 0: a sum of squares would lose it
		if i >= n/2 {
			clean[i] += 3
		}
	}
	want := make([]float64, n)
	for i := range clean {
		want[i] = naiveWindowedGaussian(clean[:i], clean[i])
	}
	// The same values with NaN rows among them.
	var gappy []float64
	var at []int // row of each clean value in gappy
	for i, v := range clean {
		if i%7 == 3 {
			gappy = append(gappy, math.NaN())
		}
		at = append(at, len(gappy))
		gappy = append(gappy, v)
	}
	got := make([]float64, len(gappy))
	windowedGaussianScores(gappy, got)
	if !math.IsNaN(got[0]) {
		t.Errorf("first row scores %g, want NaN", got[0])
	}
	for i, v := range gappy {
		if math.IsNaN(v) && !math.IsNaN(got[i]) {
			t.Errorf("NaN row %d scores %g", i, got[i])
		}
	}
	for i := 1; i < n; i++ {
		if g := got[at[i]]; g != want[i] && !(math.Abs(g-want[i]) <= 1e-6*max(1, want[i])) {
			t.Fatalf("value %d (row %d) scores %g, want %g", i, at[i], g, want[i])
		}
	}
}

// naiveWindowedGaussian scores v against the window of earlier values
// computed from scratch: the first 6400, then the oldest dropped 100 at a
// time once 100 more have come.
func naiveWindowedGaussian(earlier []float64, v float64) float64 {
	if len(earlier) == 0 {
		return math.NaN()
	}
	window := earlier
	if extra := len(earlier) - testWindowSize; extra > 0 {
		slid := extra / testWindowStep * testWindowStep
		window = earlier[slid : slid+testWindowSize]
	}
	var mean, ss float64
	for _, x := range window {
		mean += x
	}
	mean /= float64(len(window))
	for _, x := range window {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / float64(len(window)))
	if sd == 0 {
		if v == mean {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(v-mean) / sd
}
