package score

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/detect"
	"github.com/mciv/mciv/rules"
)

// Result is the score of one row of the table: a rule, or all rules of a
// set together (any of them paging is a detection; the score is their
// highest).
type Result struct {
	// Name is the rule's alert name, or "(all rules)".
	Name string
	// Detector is the rule's detector type.
	Detector string
	// Onsets is the normalised score of the firing onsets under each of
	// Profiles() (NaN when there are none to score: the reference rows),
	// Swept the score with one threshold on the detector's score swept
	// over the corpus, Theta that threshold.
	Onsets, Swept, Theta [3]float64
	// Pages is the number of firing onsets over the corpus (probation
	// included); TP the windows they found (standard profile). -1 when
	// not applicable (the reference rows).
	Pages, TP int
	// Series is the number of series the rule judged (see Judges).
	Series int
}

// AllRules is the Name of the result of every rule together.
const AllRules = "(all rules)"

// AnySignal is the signal of a rule that judges every series whatever its
// signal (the one-rule-per-detector files of the eval tables).
const AnySignal = "any"

// Judges reports whether rule r judges a series of signal sig ("signal"
// or "signal:stat"): a rule of AnySignal judges every series; a series of
// no signal is judged by every rule whose detector learns the series (all
// but static thresholds); otherwise the signal (and the stat, when given)
// must be the rule's. A static limit in seconds means nothing on a series
// of packets per second, nor on a series whose units are unknown.
func Judges(r *rules.Rule, sig string) bool {
	if r.Signal == AnySignal {
		return true
	}
	if sig == "" {
		return !static(r)
	}
	name, stat, ok := strings.Cut(sig, ":")
	return name == r.Signal && (!ok || stat == string(r.Stat))
}

// static reports whether r's detector is a static threshold, which
// judges a series only in the units of its signal.
func static(r *rules.Rule) bool {
	_, ok := r.Detector.(detect.ThresholdSpec)
	return ok
}

// Evaluate scores every rule of set on c, plus all of them together when
// there are several, in the order of set.Rules(). Rules run as the
// analyzer runs them: each series from the start with a fresh detector,
// and the rule's for (or evidence) and keep_firing_for applied to its
// firing (see runRules). A rule
// judges only the series of its signal (Judges); a series no rule of a
// row judges counts as one where that row never alerts. Evaluate stops
// with ctx's error when ctx is done.
func Evaluate(ctx context.Context, set *rules.Set, c *Corpus) ([]Result, error) {
	rs := set.Rules()
	jobs := make([][]*rules.Rule, 0, len(rs)+1)
	for _, r := range rs {
		jobs = append(jobs, []*rules.Rule{r})
	}
	if len(rs) > 1 {
		jobs = append(jobs, rs)
	}
	out := make([]Result, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, job := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = evaluate(ctx, job, c)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", c.Name, err)
	}
	return out, nil
}

// evaluate scores rules together on c.
func evaluate(ctx context.Context, rs []*rules.Rule, c *Corpus) Result {
	res := Result{Name: AllRules, Detector: fmt.Sprintf("%d rules", len(rs))}
	if len(rs) == 1 {
		res.Name, res.Detector = rs[0].Alert, rs[0].Detector.Type()
	}
	profiles := Profiles()
	tallies := make([]*Tally, len(profiles))
	for i, p := range profiles {
		tallies[i] = NewTally(p)
	}
	var pool Pool
	scores := []float64{}
	var onsets []int
	var judges []*rules.Rule
	judged := make([]bool, len(rs))
	for _, s := range c.Series {
		if ctx.Err() != nil {
			return res
		}
		judges = judges[:0]
		for k, r := range rs {
			if Judges(r, s.Signal) {
				judges = append(judges, r)
				judged[k] = true
			}
		}
		if len(judges) > 0 {
			res.Series++
		}
		scores = scores[:0]
		onsets = onsets[:0]
		scores = append(scores, make([]float64, len(s.Values))...)
		onsets = runRules(judges, s, scores, onsets)
		res.Pages += len(onsets)
		for _, t := range tallies {
			t.File(len(s.Values), s.Windows, onsets)
		}
		pool.Add(scores, s.Windows)
	}
	for i, p := range profiles {
		res.Onsets[i] = tallies[i].Score()
		res.Swept[i], res.Theta[i] = pool.Sweep(p)
	}
	res.TP = tallies[0].TP
	if len(rs) > 1 {
		n := 0
		for _, j := range judged {
			if j {
				n++
			}
		}
		res.Detector = fmt.Sprintf("%d rules", n)
	}
	return res
}

// runRules runs rules over one series, writing the highest score of each
// row into scores (0 where no detector scores) and appending the rows
// where any rule starts firing to onsets, which it returns. Each rule
// steps its lifecycle as the analyzer and mciv replay do (lifecycle.Alert.StepRule),
// each row covering the time since the previous row (none for the first,
// as in replay.CSVWith).
func runRules(rs []*rules.Rule, s Series, scores []float64, onsets []int) []int {
	for _, r := range rs {
		det := r.Detector.New()
		var (
			life lifecycle.Alert
			ev   rules.EvidenceRun
		)
		for i, ns := range s.Times {
			t := time.Unix(0, ns)
			v := s.Values[i]
			res := det.Observe(t, v)
			if sc := res.Score; sc > scores[i] && !math.IsNaN(sc) {
				scores[i] = sc
			}
			var covered time.Duration // a row covers the time since the previous one
			if i > 0 && ns > s.Times[i-1] {
				covered = time.Duration(ns - s.Times[i-1])
			}
			if life.StepRule(r, &ev, t, covered, res, v) == lifecycle.Fired {
				onsets = append(onsets, i)
			}
		}
	}
	if len(rs) > 1 {
		slices.Sort(onsets)
		onsets = slices.Compact(onsets)
	}
	return onsets
}

// WriteTable writes results as a Markdown table titled with the corpus;
// a rule that judged no series of it has no row and is named below the
// table. A score that is NaN, and Pages or TP below 0, are not
// applicable (Reference's rows) and print "–".
func WriteTable(w io.Writer, c *Corpus, results []Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "corpus %s: %d series, %d rows, %d windows\n\n", c.Name, len(c.Series), c.Rows(), c.WindowCount())
	b.WriteString("| rule | detector | onsets standard | onsets low_FP | onsets low_FN | swept standard | swept low_FP | swept low_FN | pages | windows found | series |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	var none []string
	for _, r := range results {
		if r.Series == 0 {
			none = append(none, r.Name)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			r.Name, r.Detector, scoreCell(r.Onsets[0]), scoreCell(r.Onsets[1]), scoreCell(r.Onsets[2]),
			scoreCell(r.Swept[0]), scoreCell(r.Swept[1]), scoreCell(r.Swept[2]), countCell(r.Pages), countCell(r.TP), r.Series)
	}
	if len(none) > 0 {
		fmt.Fprintf(&b, "\njudged no series (not of their signal; a static threshold judges only series of its signal: --signal or %s): %s\n",
			SignalsFile, strings.Join(none, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// notApplicable is the cell of a score or count that does not apply.
const notApplicable = "–"

// scoreCell formats a score to one decimal, notApplicable when NaN.
func scoreCell(x float64) string {
	if math.IsNaN(x) {
		return notApplicable
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

// countCell formats a count, notApplicable when below 0.
func countCell(n int) string {
	if n < 0 {
		return notApplicable
	}
	return strconv.Itoa(n)
}
