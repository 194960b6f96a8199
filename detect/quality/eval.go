package quality

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mciv/mciv/detect"
)

// Run feeds every metric of m through its own detector of spec (train
// half, then test half) and returns, per test row, the highest score of
// the metrics and whether any of them fired.
func Run(spec detect.Spec, m *Machine, step time.Duration) (scores []float64, firing []bool) {
	n := len(m.Labels)
	scores, firing = make([]float64, n), make([]bool, n)
	t0 := time.Unix(0, 0).UTC()
	for c := range m.Test {
		d := spec.New()
		row := 0
		for _, v := range m.Train[c] {
			d.Observe(t0.Add(time.Duration(row)*step), v)
			row++
		}
		for i, v := range m.Test[c] {
			r := d.Observe(t0.Add(time.Duration(row)*step), v)
			row++
			scores[i] = max(scores[i], r.Score)
			firing[i] = firing[i] || r.Firing
		}
	}
	return scores, firing
}

// Split selects the part of each machine's test rows that is scored:
// rows [From·n, To·n). The whole test half is Split{0, 1}.
type Split struct{ From, To float64 }

// Whole is the whole test half.
func Whole() Split { return Split{0, 1} }

func (s Split) rows(n int) (int, int) { return int(s.From * float64(n)), int(s.To * float64(n)) }

// Report is the quality of one detector configuration on one dataset.
type Report struct {
	Dataset string
	Spec    string
	// BestPA and BestTheta: the best point-adjusted F1 over score
	// thresholds and its threshold.
	BestPA    Counts
	BestTheta float64
	// DefaultPA: point-adjusted counts of the firing decisions.
	DefaultPA Counts
	// NABBest, NABDefault: normalised NAB standard-profile scores at the
	// best threshold and of the firing decisions (every firing row is a
	// detection, as in NAB).
	NABBest, NABDefault float64
	// NABOnsets is the NAB score when only alert onsets (rows where the
	// machine starts firing) count as detections: one page per alert.
	NABOnsets float64
	// AllPA: point-adjusted F1 counts of flagging every row.
	AllPA Counts
	// Windows is the number of labelled segments scored.
	Windows int
}

// workers is how many machines Evaluate runs at once.
const workers = 2

// Evaluate runs spec over every machine of ds and scores the rows of split.
func Evaluate(spec detect.Spec, ds *Dataset, split Split) Report {
	return EvaluateSplits(spec, ds, split)[0]
}

// runs holds the per-row scores and firing of every machine of a dataset.
type runs struct {
	scores [][]float64
	firing [][]bool
}

// runAll runs spec over every machine of ds, a few machines at a time.
func runAll(spec detect.Spec, ds *Dataset) runs {
	out := runs{scores: make([][]float64, len(ds.Machines)), firing: make([][]bool, len(ds.Machines))}
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for mi := range ds.Machines {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out.scores[mi], out.firing[mi] = Run(spec, &ds.Machines[mi], ds.Step)
		}()
	}
	wg.Wait()
	return out
}

// EvaluateSplits runs spec over every machine of ds once and scores the
// rows of each split, returning one report per split.
func EvaluateSplits(spec detect.Spec, ds *Dataset, splits ...Split) []Report {
	rs := runAll(spec, ds)
	reps := make([]Report, len(splits))
	for i, sp := range splits {
		reps[i] = score(spec, ds, rs, sp)
	}
	return reps
}

// score scores the rows of split of every machine.
func score(spec detect.Spec, ds *Dataset, rs runs, split Split) Report {
	rep := Report{Dataset: ds.Name, Spec: spec.String()}
	var (
		items   []item
		total   int
		rows    []nabRow
		nabDef  float64
		nabOn   float64
		windows int
	)
	for mi := range ds.Machines {
		m := &ds.Machines[mi]
		lo, hi := split.rows(len(m.Labels))
		sc, fi, lab := rs.scores[mi][lo:hi], rs.firing[mi][lo:hi], m.Labels[lo:hi]
		it, tot := paItems(sc, lab)
		items, total = append(items, it...), total+tot
		rep.DefaultPA = rep.DefaultPA.Add(PointAdjusted(fi, lab))
		all := make([]bool, len(lab))
		for i := range all {
			all[i] = true
		}
		rep.AllPA = rep.AllPA.Add(PointAdjusted(all, lab))
		r, w := nabRows(sc, lab, windows)
		nabDef += nabScore(r, w, func(i int) bool { return fi[i] })
		nabOn += nabScore(r, w, func(i int) bool { return fi[i] && (i == 0 || !fi[i-1]) })
		rows = append(rows, r...)
		windows += w
	}
	rep.BestPA, rep.BestTheta = BestPointAdjusted(items, total)
	raw, _ := bestNAB(rows, windows)
	rep.NABBest = nabNormalise(raw, windows)
	rep.NABDefault = nabNormalise(nabDef, windows)
	rep.NABOnsets = nabNormalise(nabOn, windows)
	rep.Windows = windows
	return rep
}

// WriteTable writes reports as a markdown table.
func WriteTable(w io.Writer, reps []Report) error {
	if _, err := fmt.Fprintln(w, "| data | detector | PA-F1 best (θ) | PA-F1 default (P/R) | NAB best | NAB default | NAB onsets | PA-F1 all rows |\n|---|---|---|---|---|---|---|---|"); err != nil {
		return fmt.Errorf("writing table: %w", err)
	}
	return writeRows(w, reps)
}

// writeRows writes the table rows of reps.
func writeRows(w io.Writer, reps []Report) error {
	for _, r := range reps {
		_, err := fmt.Fprintf(w, "| %s | %s | %.3f (%.3f) | %.3f (%.2f/%.2f) | %.1f | %.1f | %.1f | %.3f |\n",
			r.Dataset, r.Spec, r.BestPA.F1(), r.BestTheta, r.DefaultPA.F1(), r.DefaultPA.Precision(), r.DefaultPA.Recall(),
			r.NABBest, r.NABDefault, r.NABOnsets, r.AllPA.F1())
		if err != nil {
			return fmt.Errorf("writing table: %w", err)
		}
	}
	return nil
}
