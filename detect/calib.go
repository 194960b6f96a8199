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
// makes the same deviation less unusual.

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
		lo := calibLo * math.Exp2(float64(calibBins-2)/calibPerOct)
		return calibBins - 1, min(1, lo/d)
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
