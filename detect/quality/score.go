package quality

import (
	"math"
	"slices"
)

// Counts are point-adjusted confusion counts over rows.
type Counts struct {
	TP, FP, FN int
}

// F1 is 2TP/(2TP+FP+FN), 0 when there is nothing to find or find.
func (c Counts) F1() float64 {
	d := 2*c.TP + c.FP + c.FN
	if d == 0 {
		return 0
	}
	return float64(2*c.TP) / float64(d)
}

// Precision is TP/(TP+FP).
func (c Counts) Precision() float64 {
	if c.TP+c.FP == 0 {
		return 0
	}
	return float64(c.TP) / float64(c.TP+c.FP)
}

// Recall is TP/(TP+FN).
func (c Counts) Recall() float64 {
	if c.TP+c.FN == 0 {
		return 0
	}
	return float64(c.TP) / float64(c.TP+c.FN)
}

// Add sums counts.
func (c Counts) Add(o Counts) Counts { return Counts{c.TP + o.TP, c.FP + o.FP, c.FN + o.FN} }

// segments returns the [start,end] (inclusive) runs of true labels.
func segments(labels []bool) [][2]int {
	var out [][2]int
	for i := 0; i < len(labels); i++ {
		if !labels[i] {
			continue
		}
		j := i
		for j+1 < len(labels) && labels[j+1] {
			j++
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

// PointAdjusted counts detections with point adjustment: every row of a
// labelled segment with at least one detected row counts as detected.
func PointAdjusted(detected, labels []bool) Counts {
	var c Counts
	for i, l := range labels {
		if !l && detected[i] {
			c.FP++
		}
	}
	for _, s := range segments(labels) {
		n := s[1] - s[0] + 1
		if slices.Contains(detected[s[0]:s[1]+1], true) {
			c.TP += n
		} else {
			c.FN += n
		}
	}
	return c
}

// item is one candidate of a threshold sweep: a score and what detecting
// at it adds.
type item struct {
	score float64
	tp    int // rows of a segment (point adjustment)
	fp    int
}

// paItems lists, for one series, a sweep item per segment (its highest
// score, its length) and per unlabelled row; total is the anomalous rows.
func paItems(scores []float64, labels []bool) (items []item, total int) {
	for i, l := range labels {
		if !l {
			items = append(items, item{score: scores[i], fp: 1})
		}
	}
	for _, s := range segments(labels) {
		items = append(items, item{score: slices.Max(scores[s[0] : s[1]+1]), tp: s[1] - s[0] + 1})
		total += s[1] - s[0] + 1
	}
	return items, total
}

// BestPointAdjusted sweeps one threshold over the pooled items of several
// series (detected iff score >= θ) and returns the best point-adjusted F1
// counts and their threshold (ties: the highest threshold).
func BestPointAdjusted(items []item, total int) (Counts, float64) {
	slices.SortStableFunc(items, func(a, b item) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	best, bestTheta := Counts{FN: total}, math.Inf(1)
	var tp, fp int
	for i, it := range items {
		tp += it.tp
		fp += it.fp
		if i+1 < len(items) && items[i+1].score == it.score {
			continue
		}
		c := Counts{TP: tp, FP: fp, FN: total - tp}
		if c.F1() > best.F1() {
			best, bestTheta = c, it.score
		}
	}
	return best, bestTheta
}

// NAB standard profile weights.
const (
	nabTP = 1.0
	nabFP = 0.11
	nabFN = 1.0
)

// scaledSigmoid is NAB's 2·sigmoid(-5y)-1, -1 beyond y = 3.
func scaledSigmoid(y float64) float64 {
	if y > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*y)) - 1
}

// nabRow is one row in a NAB sweep: its score, its weight and its window
// (-1 outside windows; window ids are unique across pooled series).
type nabRow struct {
	score  float64
	weight float64
	window int
}

// nabRows computes NAB's per-row weights for one series whose windows are
// its labelled segments; ids start at firstWindow. It returns the rows
// and the number of windows.
func nabRows(scores []float64, labels []bool, firstWindow int) ([]nabRow, int) {
	maxTP := scaledSigmoid(-1)
	segs := segments(labels)
	rows := make([]nabRow, len(labels))
	prevRight, prevWidth := -1, 0
	w := 0
	for i := range labels {
		r := nabRow{score: scores[i], window: -1}
		switch {
		case w < len(segs) && i >= segs[w][0] && i <= segs[w][1]:
			left, right := segs[w][0], segs[w][1]
			width := right - left + 1
			pos := -float64(right-i+1) / float64(width)
			r.weight = nabTP * scaledSigmoid(pos) / maxTP
			r.window = firstWindow + w
			if i == right {
				prevRight, prevWidth = right, width
				w++
			}
		case prevRight < 0:
			r.weight = -nabFP
		default:
			y := math.Abs(float64(prevRight-i)) / float64(max(prevWidth-1, 1))
			r.weight = nabFP * scaledSigmoid(y)
		}
		rows[i] = r
	}
	return rows, len(segs)
}

// nabScore is the raw NAB score of rows where detected(i) says which
// rows are detections.
func nabScore(rows []nabRow, windows int, detected func(i int) bool) float64 {
	best := make(map[int]float64)
	var fp float64
	for i, r := range rows {
		if !detected(i) {
			continue
		}
		if r.window < 0 {
			fp += r.weight
			continue
		}
		if b, ok := best[r.window]; !ok || r.weight > b {
			best[r.window] = r.weight
		}
	}
	s := fp - nabFN*float64(windows-len(best))
	for _, b := range best {
		s += b
	}
	return s
}

// nabNormalise maps a raw score to 0 (no detections) .. 100 (perfect).
func nabNormalise(raw float64, windows int) float64 {
	if windows == 0 {
		return 0
	}
	null := -nabFN * float64(windows)
	perfect := nabTP * float64(windows)
	return 100 * (raw - null) / (perfect - null)
}

// bestNAB sweeps one threshold over pooled rows as NAB's optimiser does
// (ties: the highest threshold) and returns the best raw score and θ.
func bestNAB(rows []nabRow, windows int) (float64, float64) {
	slices.SortStableFunc(rows, func(a, b nabRow) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	part := make(map[int]float64)
	var fp float64
	sum := -nabFN * float64(windows) // Σ window parts, all missed at first
	best, bestTheta := sum, math.Inf(1)
	for i, r := range rows {
		if r.window < 0 {
			fp += r.weight
		} else {
			old, ok := part[r.window]
			if !ok {
				old = -nabFN
			}
			if r.weight > old {
				part[r.window] = r.weight
				sum += r.weight - old
			}
		}
		if i+1 < len(rows) && rows[i+1].score == r.score {
			continue
		}
		if s := sum + fp; s > best {
			best, bestTheta = s, r.score
		}
	}
	return best, bestTheta
}
