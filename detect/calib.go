package detect

import "math"

// Calibration: every statistical detector turns its deviation into a tail
// probability against its own history of deviations, so that a score
// means the same on every metric and for every detector (an
// anomaly-likelihood layer, after Numenta's).
//
// The history is an exponentially weighted histogram of the directed
// deviations seen (calibBins log-spaced bins, three per octave from
// calibLo), with a horizon of calibHorizon samples. The tail probability
// of a deviation d is the share of the history at or above d, but never
// less than a standard normal's two-sided tail: a young detector, or a
// deviation beyond everything seen, is judged as if the deviations were
// Gaussian (and still ranks by its size), and a heavy-tailed history
// makes the same deviation less unusual. (tailFitted, below, judges a
// deviation beyond the history's largest by their tail instead.)

const (
	calibBins    = 32
	calibMinN    = 32    // samples of history before the history judges
	calibLo      = 0.125 // upper edge of the first bin
	calibPerOct  = 3     // bins per octave
	calibHorizon = 4096  // samples
	// calibAnomalous is the weight in the history of a deviation seen
	// while firing.
	calibAnomalous = 1.0 / 4096
	// calibAtThreshold is the deviation, in standard normal units, that a
	// detector's threshold stands for when its deviations are calibrated.
	calibAtThreshold = 5
	// pFloor is the smallest tail probability reported: 1-p must stay
	// below 1 in float64.
	pFloor = 1e-15
)

// calib is the history of a detector's deviations. 140 bytes.
type calib struct {
	bins  [calibBins]float32
	total float64 // sum of bins
	w     float64 // weight of the next sample (grows; rescaled)
}

// bin is the histogram bin of a deviation d >= 0, and the fraction of that
// bin's width that lies above d (log-linear inside a bin).
func calibBin(d float64) (int, float64) {
	if !(d >= calibLo) {
		return 0, max(0, 1-d/calibLo)
	}
	x := calibPerOct * math.Log2(d/calibLo)
	if x >= calibBins-2 { // (before int(x): +Inf has no int)
		// The open last bin: a Pareto-like share above d.
		return calibBins - 1, min(1, calibEdge(calibBins-2)/d)
	}
	return 1 + int(x), 1 - (x - math.Floor(x))
}

// tail is the calibrated probability of a deviation at least d.
func (c *calib) tail(d float64) float64 {
	prior := 1.0
	if d > 0 {
		prior = math.Erfc(d / math.Sqrt2)
	}
	if c.w == 0 {
		return max(prior, pFloor)
	}
	b, frac := calibBin(d)
	above := float64(c.bins[b]) * frac
	for _, x := range c.bins[b+1:] {
		above += float64(x)
	}
	n := c.total / c.w // effective number of samples
	if n < calibMinN {
		return max(prior, pFloor) // too little history to judge by
	}
	p := max(above/c.w/n, prior)
	return min(1, max(p, pFloor))
}

// add puts a deviation into the history with weight 1, or
// calibAnomalous while the detector fires, so that an anomaly that lasts
// becomes the new normal slowly (through the baseline) rather than at
// once through its own history.
func (c *calib) add(d float64, firing bool) {
	const grow = 1 / (1 - 1.0/calibHorizon)
	if c.w == 0 {
		c.w = 1
	} else {
		c.w *= grow
	}
	b, _ := calibBin(d)
	w := c.w
	if firing {
		w *= calibAnomalous
	}
	c.bins[b] += float32(w)
	c.total += w
	if c.w > 1e18 {
		s := 1 / c.w
		for i := range c.bins {
			c.bins[i] *= float32(s)
		}
		c.total *= s
		c.w = 1
	}
}

// A statistic whose deviations are nearly independent from sample to
// sample (auto's spike statistic) judges a deviation beyond the largest
// of its history by a tail fitted to them, not by the standard normal's:
// the Gaussian prior gave a heavy-tailed metric's every new record (a
// lognormal or Student-t series' largest values) the score of a
// Gaussian metric's 6σ event, and those records paged. The fitted tail
// is Gaussian-shaped, share·exp(-(d²-d₀²)/(2s)), from the deviation d₀
// that the calibFitN largest of the history exceed, with s the mean of
// (x²-d₀²)/2 over them: about 1 for a Gaussian history (the fit is then
// the normal tail again), larger for a heavy one. Smoothed statistics
// (auto's level, drift, variance) keep the Gaussian prior: their
// largest values come from one or two excursions, too few to fit a tail
// to. Measured with mciv eval (RESULTS.md, session 13).
const (
	// calibFitN is the number of the history's largest deviations the
	// tail is fitted to, and calibFitShare the largest share of the
	// history they may be: the fit starts once the history holds
	// calibFitN/calibFitShare (600) samples.
	calibFitN     = 30
	calibFitShare = 0.05
)

// tailFitted is tail(d), or the tail fitted to the history's largest
// deviations where that is larger (a deviation beyond them, in a history
// that has calibFitN/calibFitShare samples).
func (c *calib) tailFitted(d float64) float64 {
	p := c.tail(d)
	if c.w == 0 {
		return p
	}
	n := c.total / c.w
	if n*calibFitShare < calibFitN || p*n >= calibFitN {
		return p // too young to fit, or d among the history's bulk
	}
	return min(1, max(p, c.fitted(d)))
}

// fitted is the Gaussian-shaped tail fitted to the history's calibFitN
// largest deviations at d, or 0 when d is not beyond where they start.
func (c *calib) fitted(d float64) float64 {
	// From the top bin down until the bins hold the weight of calibFitN
	// samples: their weight sw, and the weighted sum of their geometric
	// centres squared.
	need := calibFitN * c.w
	var sw, sx2 float64
	for i := calibBins - 1; i >= 1; i-- {
		w := float64(c.bins[i])
		sw += w
		sx2 += w * calibEdge(i-1) * calibEdge(i)
		if sw < need {
			continue
		}
		d0 := calibEdge(i - 1)
		s := (sx2/sw - d0*d0) / 2 // the mean of (x²-d₀²)/2
		if d <= d0 || s <= 0 {
			return 0
		}
		return sw / c.total * math.Exp(-(d*d-d0*d0)/(2*s))
	}
	return 0 // the history holds less than calibFitN samples above bin 0
}

// calibEdge is the upper edge of histogram bin i (the lower edge of bin
// i+1).
func calibEdge(i int) float64 { return calibLo * math.Exp2(float64(i)/calibPerOct) }
