// Package score judges detectors the way public anomaly benchmarks do:
// NAB's windowed scoring (anomaly windows around each labelled anomaly, a
// sigmoid reward for detecting early in a window, a cost per false
// positive, normalised so that detecting nothing scores 0 and a perfect
// detector 100), on labelled corpora laid out as NAB lays out its own
// (data/**/*.csv plus a JSON file of windows), for rules run exactly as
// the analyzer runs them: detector, then lifecycle (for or evidence,
// keep_firing_for).
//
// Two views are scored: the firing onsets (a row is a detection when an
// alert starts firing on it, which is what pages someone), and the
// detector's score with one threshold swept over the whole corpus, as
// NAB's optimiser does (the ceiling a detector's ranking allows).
package score

import (
	"math"
	"slices"
)

// Profile is one of NAB's application profiles: the weights of a true
// positive, a false positive and a missed window.
type Profile struct {
	Name       string
	TP, FP, FN float64
}

// Profiles returns NAB's three profiles: standard, reward_low_FP and
// reward_low_FN.
func Profiles() []Profile {
	return []Profile{
		{Name: "standard", TP: 1, FP: 0.11, FN: 1},
		{Name: "reward_low_FP", TP: 1, FP: 0.22, FN: 1},
		{Name: "reward_low_FN", TP: 1, FP: 0.11, FN: 2},
	}
}

// Probation is the number of leading rows of an n-row file that are not
// scored (detectors learn during them): 15 % of the file, at most 750.
func Probation(n int) int {
	return min(int(math.Floor(0.15*float64(n))), 750)
}

// scaledSigmoid is NAB's 2·sigmoid(-5y)-1, and -1 beyond y = 3.
func scaledSigmoid(y float64) float64 {
	if y > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*y)) - 1
}

// maxTP is the sigmoid at the left edge of a window; dividing by it makes
// the earliest detection of a window worth exactly the profile's TP.
var maxTP = scaledSigmoid(-1)

// Window is an anomaly window of a file: rows From..To, both inclusive.
type Window struct{ From, To int }

// Weights returns the NAB weight of every row of an n-row file with the
// given windows (sorted, not overlapping) under profile p, and the index
// of the window each row lies in (-1 outside windows). Inside a window the
// weight falls from p.TP at its first row to about 0 at its last; outside,
// a detection costs up to p.FP, less shortly after a window, the full
// p.FP before the first window.
func Weights(n int, windows []Window, p Profile) (w []float64, win []int) {
	w = make([]float64, n)
	win = make([]int, n)
	prevRight, prevWidth := -1, 0
	k := 0
	for i := range n {
		win[i] = -1
		for k < len(windows) && windows[k].To < i {
			k++ // a window entirely before i (only when windows overlap or are out of range)
		}
		switch {
		case k < len(windows) && i >= windows[k].From && i <= windows[k].To:
			left, right := windows[k].From, windows[k].To
			width := right - left + 1
			pos := -float64(right-i+1) / float64(width)
			w[i] = p.TP * scaledSigmoid(pos) / maxTP
			win[i] = k
			if i == right {
				prevRight, prevWidth = right, width
			}
		case prevRight < 0:
			w[i] = -p.FP
		default:
			y := math.Abs(float64(prevRight-i)) / float64(max(prevWidth-1, 1))
			w[i] = p.FP * scaledSigmoid(y)
		}
	}
	return w, win
}

// Tally accumulates the raw NAB score of detections over files: the best
// (earliest) detection of each window, minus FN for each window missed,
// plus the (negative) weights of detections outside windows.
type Tally struct {
	p       Profile
	windows int
	best    []float64 // per window of the current file; NaN: missed
	raw     float64
	TP, FP  int // detected windows, detections outside windows
}

// NewTally starts a tally under profile p.
func NewTally(p Profile) *Tally { return &Tally{p: p} }

// File adds one file of n rows: detected lists the rows (ascending) that
// are detections. Rows in the probation are ignored.
func (t *Tally) File(n int, windows []Window, detected []int) {
	w, win := Weights(n, windows, t.p)
	prob := Probation(n)
	t.best = slices.Grow(t.best[:0], len(windows))[:len(windows)]
	for i := range t.best {
		t.best[i] = math.NaN()
	}
	for _, i := range detected {
		if i < prob || i >= n {
			continue
		}
		if k := win[i]; k >= 0 {
			if math.IsNaN(t.best[k]) || w[i] > t.best[k] {
				t.best[k] = w[i]
			}
			continue
		}
		t.raw += w[i]
		t.FP++
	}
	for k, b := range t.best {
		if windows[k].To < prob {
			continue // a window inside the probation is not scored
		}
		t.windows++
		if math.IsNaN(b) {
			t.raw -= t.p.FN
			continue
		}
		t.raw += b
		t.TP++
	}
}

// Raw is the raw score so far.
func (t *Tally) Raw() float64 { return t.raw }

// Windows is the number of scored windows so far.
func (t *Tally) Windows() int { return t.windows }

// Score is the normalised score: 0 for no detections, 100 for perfect.
func (t *Tally) Score() float64 { return Normalise(t.raw, t.windows, t.p) }

// Normalise maps a raw score over the given number of windows to NAB's
// scale: 100·(raw−null)/(perfect−null), null = −FN·windows (no
// detections), perfect = TP·windows. 0 when there are no windows.
func Normalise(raw float64, windows int, p Profile) float64 {
	if windows == 0 {
		return 0
	}
	null := -p.FN * float64(windows)
	perfect := p.TP * float64(windows)
	return 100 * (raw - null) / (perfect - null)
}

// Pool gathers the scored rows of many files for a threshold sweep.
type Pool struct {
	rows  []poolRow
	files []poolFile
}

type poolRow struct {
	score float64
	file  int32
	row   int32
}

type poolFile struct {
	n       int
	windows []Window
}

// Add adds a file's per-row detector scores (a NaN score is never a
// detection) and its windows.
func (p *Pool) Add(scores []float64, windows []Window) {
	f := int32(len(p.files))
	p.files = append(p.files, poolFile{n: len(scores), windows: windows})
	prob := Probation(len(scores))
	for i, s := range scores {
		if i >= prob && !math.IsNaN(s) {
			p.rows = append(p.rows, poolRow{score: s, file: f, row: int32(i)})
		}
	}
}

// Sweep finds the one threshold θ over all files that maximises the raw
// score under profile p when every row scoring >= θ is a detection (ties
// enter together; equal scores go to the highest θ; +Inf means nothing
// detected), and returns the normalised score and θ.
func (p *Pool) Sweep(prof Profile) (score, theta float64) {
	slices.SortStableFunc(p.rows, func(a, b poolRow) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	// Weights and global window ids per file; a window that ends inside
	// the probation is not scored (its part stays 0).
	ws := make([][]float64, len(p.files))
	ids := make([][]int, len(p.files))
	var part []float64
	windows := 0
	for f, pf := range p.files {
		w, win := Weights(pf.n, pf.windows, prof)
		base := len(part)
		for _, wd := range pf.windows {
			if wd.To >= Probation(pf.n) {
				part = append(part, -prof.FN)
				windows++
			} else {
				part = append(part, 0)
			}
		}
		for i := range win {
			if win[i] >= 0 {
				win[i] += base
			}
		}
		ws[f], ids[f] = w, win
	}
	sum := -prof.FN * float64(windows)
	var fp float64
	best, bestTheta := sum, math.Inf(1)
	for i, r := range p.rows {
		w := ws[r.file][r.row]
		if k := ids[r.file][r.row]; k >= 0 {
			if w > part[k] {
				sum += w - part[k]
				part[k] = w
			}
		} else {
			fp += w
		}
		if i+1 < len(p.rows) && p.rows[i+1].score == r.score {
			continue
		}
		if s := sum + fp; s > best {
			best, bestTheta = s, r.score
		}
	}
	return Normalise(best, windows, prof), bestTheta
}
