package score

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// The Names of Reference's rows.
const (
	ReferenceRandom           = "(reference) random"
	ReferenceWindowedGaussian = "(reference) windowed gaussian"
)

const (
	// randomSeeds is how many seeds the random reference's score is the
	// mean of: one seed alone moves it by about ±4 points (sd, 60 series
	// of 4000 rows; ±9 on 10 series), the mean of 10 by a third of that.
	randomSeeds = 10
	// randomStream is the PCG's second seed word, fixed so that the
	// random reference is the same on every run.
	randomStream = 0x6d63697672656600 // "mcivref\x00"

	// gaussianWindowSize is the most earlier values the windowed
	// Gaussian judges a row against.
	gaussianWindowSize = 6400
	// gaussianWindowStep is how many values enter a full window
	// together, pushing out as many of the oldest.
	gaussianWindowStep = 100
)

// Reference scores two reference detectors on c, the floor to read the
// rules' rows against, as NAB's board lists its random and windowed
// Gaussian detectors beside the others (11.0 and 39.6 on NAB's corpus,
// standard profile):
//
//   - ReferenceRandom gives every row a uniform random score: what a
//     detector with no skill scores on c. On a corpus whose windows cover
//     most rows it reaches 40-60 with the threshold swept, which says the
//     corpus does not tell detectors apart.
//   - ReferenceWindowedGaussian scores each row |v − mean| / sd of the
//     values before it (see windowedGaussianScores): what the plainest
//     statistical detector scores on c.
//
// Both are scored only with one threshold swept over the corpus (Swept
// and Theta, every profile): they have no lifecycle, so their Onsets are
// NaN and their Pages and TP -1, meaning not applicable. The random scores
// come from fixed seeds: the same corpus always gives the same rows.
// Reference stops with ctx's error when ctx is done.
func Reference(ctx context.Context, c *Corpus) ([]Result, error) {
	random, err := randomReference(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", c.Name, err)
	}
	gauss, err := windowedGaussianReference(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", c.Name, err)
	}
	return []Result{random, gauss}, nil
}

// referenceResult is a reference row of c before it is scored: every
// series judged, no onsets, pages or windows found.
func referenceResult(name, detector string, c *Corpus) Result {
	nan := math.NaN()
	return Result{
		Name:     name,
		Detector: detector,
		Onsets:   [3]float64{nan, nan, nan},
		Pages:    -1,
		TP:       -1,
		Series:   len(c.Series),
	}
}

// randomReference is the random row: the swept score of each profile is
// the mean over randomSeeds seeds; Theta is NaN (there is no one
// threshold).
func randomReference(ctx context.Context, c *Corpus) (Result, error) {
	res := referenceResult(ReferenceRandom, "random", c)
	res.Theta = [3]float64{math.NaN(), math.NaN(), math.NaN()}
	for seed := uint64(1); seed <= randomSeeds; seed++ {
		swept, err := randomSwept(ctx, c, seed)
		if err != nil {
			return Result{}, err
		}
		for i, s := range swept {
			res.Swept[i] += s / randomSeeds
		}
	}
	return res, nil
}

// randomSwept is the swept score under each of Profiles() of uniform
// random row scores drawn from a PCG seeded with seed.
func randomSwept(ctx context.Context, c *Corpus, seed uint64) ([3]float64, error) {
	rnd := rand.New(rand.NewPCG(seed, randomStream))
	var pool Pool
	var scores []float64
	for _, s := range c.Series {
		if err := ctx.Err(); err != nil {
			return [3]float64{}, err
		}
		scores = scores[:0]
		for range s.Values {
			scores = append(scores, rnd.Float64())
		}
		pool.Add(scores, s.Windows)
	}
	var swept [3]float64
	for i, p := range Profiles() {
		swept[i], _ = pool.Sweep(p)
	}
	return swept, nil
}

// windowedGaussianReference is the windowed Gaussian row.
func windowedGaussianReference(ctx context.Context, c *Corpus) (Result, error) {
	res := referenceResult(ReferenceWindowedGaussian, "windowed_gaussian", c)
	var pool Pool
	var scores []float64
	for _, s := range c.Series {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		scores = append(scores[:0], make([]float64, len(s.Values))...)
		windowedGaussianScores(s.Values, scores)
		pool.Add(scores, s.Windows)
	}
	for i, p := range Profiles() {
		res.Swept[i], res.Theta[i] = pool.Sweep(p)
	}
	return res, nil
}

// windowedGaussianScores writes into scores the windowed Gaussian's score
// of each row of values: |v − mean| / sd of the window of earlier values
// (gaussianWindow). A NaN row is skipped (it scores NaN and never enters
// the window); the first row, with no earlier values, scores NaN.
func windowedGaussianScores(values, scores []float64) {
	var w gaussianWindow
	for i, v := range values {
		if math.IsNaN(v) {
			scores[i] = math.NaN()
			continue
		}
		scores[i] = w.score(v)
		w.add(v)
	}
}

// gaussianWindow holds the values a row is judged against and their mean
// and standard deviation. It grows to gaussianWindowSize values, its mean
// and sd following every value; once full it slides by gaussianWindowStep
// values at a time: the newest wait in pending and enter together,
// pushing out as many of the oldest, and only then are the mean and sd
// estimated again.
type gaussianWindow struct {
	values  []float64 // the window, oldest first
	pending []float64 // values waiting to enter the full window
	// mean and m2 are the mean of values and the sum of their squared
	// deviations from it, kept with Welford's updates (a plain sum of
	// squares loses the deviations of a series far from 0, and a flat
	// series' sd must come out exactly 0).
	mean, m2 float64
}

// score is |v − mean| / sd of the window: NaN when it is empty; when the
// sd is 0, 0 if v is the mean and +Inf otherwise.
func (w *gaussianWindow) score(v float64) float64 {
	if len(w.values) == 0 {
		return math.NaN()
	}
	dev := math.Abs(v - w.mean)
	sd := math.Sqrt(w.m2 / float64(len(w.values)))
	switch {
	case sd > 0:
		return dev / sd
	case dev == 0:
		return 0
	}
	return math.Inf(1)
}

// add puts v in the window: at once while the window grows, otherwise
// with the gaussianWindowStep values it waits for.
func (w *gaussianWindow) add(v float64) {
	if len(w.values) < gaussianWindowSize {
		w.values = append(w.values, v)
		w.accumulate(v, len(w.values))
		return
	}
	w.pending = append(w.pending, v)
	if len(w.pending) < gaussianWindowStep {
		return
	}
	w.values = append(w.values[:0], w.values[len(w.pending):]...)
	w.values = append(w.values, w.pending...)
	w.pending = w.pending[:0]
	w.reestimate()
}

// accumulate updates mean and m2 for v, the n-th value of the window.
func (w *gaussianWindow) accumulate(v float64, n int) {
	d := v - w.mean
	w.mean += d / float64(n)
	w.m2 += d * (v - w.mean)
}

// reestimate computes mean and m2 over the window again.
func (w *gaussianWindow) reestimate() {
	w.mean, w.m2 = 0, 0
	for i, v := range w.values {
		w.accumulate(v, i+1)
	}
}
