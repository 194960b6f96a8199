package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mciv/mciv/analyzer/score"
	"github.com/mciv/mciv/detect/quality"
	"github.com/mciv/mciv/detect/synth"
)

func evalCmd(e *env) *cobra.Command {
	var (
		rulePaths []string
		corpora   []string
		valueCol  string
		signal    string
		reference bool
	)
	cmd := &cobra.Command{
		Use:   "eval --rules PATH... --corpus DIR...",
		Short: "Score rules on labelled corpora with NAB's windowed scoring",
		Long: `Score rules on labelled corpora the way NAB scores detectors.

A corpus is a directory laid out as NAB's: data/**/*.csv (a timestamp and a
value column, as mciv replay reads them) and labels.json (or
labels/combined_windows.json) mapping each file's path under data/ to its
anomaly windows, [["start","end"], ...]. Each rule runs over each file as
the analyzer runs it (detector, for or evidence, keep_firing_for), from a
fresh state; for evidence, each row covers the time since the previous
row, as in mciv replay.

A rule judges only the series of its own signal: signals.json beside
labels.json maps globs of file names to "signal" or "signal:stat"
(e.g. {"*": "db_query_seconds:p99"}), and --signal gives one for every
series of every corpus. A series with no signal is judged by every rule
whose detector learns the series, but not by static thresholds, whose
limits need the series' units; a rule whose signal is "any" judges every
series (the detector rows of analyzer/score/testdata/detectors.yaml). A
rule that judges no series of a corpus has no row and is named below the
table.

One table per corpus, one row per rule and one for all rules together:
the NAB score (standard, reward_low_FP, reward_low_FN profiles; 0 = never
alerting, 100 = perfect) of the firing onsets (the rows where an alert
starts firing), and of the detector's score with one threshold swept over
the corpus. Two reference rows follow (--reference=false leaves them out):
a random score on every row (the mean of ten seeds) and a windowed
Gaussian, swept only; they are the floor to read the rules' rows against
(a corpus on which random scores high does not tell detectors apart).
"mciv eval corpus" writes the corpora of the repository's benchmarks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(corpora) == 0 {
				return errors.New("eval: give at least one --corpus")
			}
			set, err := loadRulesOrReport(e.stderr, rulePaths)
			if err != nil {
				return err
			}
			for i, dir := range corpora {
				c, err := score.Load(cmd.Context(), dir, valueCol)
				if err != nil {
					return fmt.Errorf("eval: %w", err)
				}
				if signal != "" {
					c.SetSignal(signal)
				}
				res, err := score.Evaluate(cmd.Context(), set, c)
				if err != nil {
					return fmt.Errorf("eval: %w", err)
				}
				if reference {
					ref, err := score.Reference(cmd.Context(), c)
					if err != nil {
						return fmt.Errorf("eval: %w", err)
					}
					res = append(res, ref...)
				}
				if i > 0 {
					fmt.Fprintln(e.stdout)
				}
				if err := score.WriteTable(e.stdout, c, res); err != nil {
					return fmt.Errorf("eval: %w", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&rulePaths, "rules", nil, "rules files or directories (default: the built-in rules)")
	cmd.Flags().StringSliceVar(&corpora, "corpus", nil, "corpus directories (data/**/*.csv and labels.json)")
	cmd.Flags().StringVar(&valueCol, "value-column", "", "the column of values, by header name or 1-based position (default: value)")
	cmd.Flags().StringVar(&signal, "signal", "", `the signal of every series, "signal" or "signal:stat" (default: signals.json of each corpus)`)
	cmd.Flags().BoolVar(&reference, "reference", true, "add the reference rows (random and windowed Gaussian scores, swept) after the rules' rows")
	cmd.AddCommand(evalCorpusCmd(e))
	return cmd
}

func evalCorpusCmd(e *env) *cobra.Command {
	var (
		kind, out, data, seeds, signal string
		step                           time.Duration
		rows                           int
	)
	cmd := &cobra.Command{
		Use:   "corpus --kind synth|smd|asd [--step D] [--seeds A-B] [--rows N] --out DIR",
		Short: "Write a labelled corpus for mciv eval: synthetic series, or SMD/ASD per metric",
		Long: `Write a labelled corpus in NAB's layout under --out.

synth: one series per seed (--seeds, e.g. 1-60) of --rows rows (default
4000) at --step (default 1m), with spikes, level shifts, drifts, variance
and seasonality changes, flat lines and dropouts planted and labelled.
smd, asd: the test halves of the labelled server data (--data, default
../shared/data or $MCIV_DATA), one series per machine and metric that has
anomalies of its own (interpretation labels), at --step (default: the
data's own step; coarser steps average, finer ones interpolate). Windows
follow NAB's labeller.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("eval corpus: --out is required")
			}
			var c *score.Corpus
			var err error
			switch kind {
			case "synth":
				c, err = synthCorpus(seeds, step, rows)
			case "smd", "asd":
				c, err = serverCorpus(kind, data, step)
			default:
				return fmt.Errorf("eval corpus: --kind %q is not synth, smd or asd", kind)
			}
			if err != nil {
				return err
			}
			c.SetSignal(signal)
			if err := score.Write(out, c); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: %d series, %d rows, %d windows\n", out, len(c.Series), c.Rows(), c.WindowCount())
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "synth", "synth, smd or asd")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the corpus to")
	cmd.Flags().StringVar(&data, "data", "", "labelled data directory (default: $MCIV_DATA or ../shared/data)")
	cmd.Flags().StringVar(&seeds, "seeds", "1-60", "synth: the seeds, as A-B")
	cmd.Flags().DurationVar(&step, "step", 0, "sampling step (synth default 1m; smd/asd default their own)")
	cmd.Flags().IntVar(&rows, "rows", synth.Rows, "synth: rows per series (a long series shows what a detector does after weeks of history)")
	cmd.Flags().StringVar(&signal, "signal", "", `the signal of the series, "signal" or "signal:stat", written to signals.json (default: none, every rule but static thresholds judges them)`)
	return cmd
}

// synthCorpus generates the series of seeds "A-B" at step, rows long.
func synthCorpus(seeds string, step time.Duration, rows int) (*score.Corpus, error) {
	a, b, ok := strings.Cut(seeds, "-")
	lo, err1 := strconv.ParseUint(a, 10, 64)
	hi, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || hi < lo {
		return nil, fmt.Errorf("eval corpus: --seeds %q is not A-B", seeds)
	}
	if step <= 0 {
		step = time.Minute
	}
	if rows < 100 {
		return nil, fmt.Errorf("eval corpus: --rows %d: a series needs at least 100 rows", rows)
	}
	c := &score.Corpus{Name: "synth"}
	for seed := lo; seed <= hi; seed++ {
		s := synth.Generate(seed, step, rows)
		lab := make([]bool, len(s.Values))
		// Each anomaly is labelled at its first row, as NAB's labellers
		// mark where an anomaly starts: its window has NAB's width
		// centred there, however long the anomaly lasts. Labelling every
		// row of a long anomaly stretched its window over up to 60 % of
		// the series, where random scores reached 40-60 with the
		// threshold swept (RESULTS.md, session 12).
		for _, an := range s.Anomalies {
			lab[an.From] = true
		}
		c.Series = append(c.Series, score.FromLabels(s.Name+".csv", s.Start, step, s.Values, lab))
	}
	return c, nil
}

// serverCorpus turns SMD or ASD into single-metric series.
func serverCorpus(kind, data string, step time.Duration) (*score.Corpus, error) {
	if data == "" {
		d, err := quality.DataDir()
		if err != nil {
			return nil, fmt.Errorf("eval corpus: %w", err)
		}
		data = d
	}
	load := quality.LoadSMD
	if kind == "asd" {
		load = quality.LoadASD
	}
	ds, err := load(data)
	if err != nil {
		return nil, fmt.Errorf("eval corpus: %w", err)
	}
	pm, err := quality.PerMetric(ds, filepath.Join(data, kind, "interpretation_label"))
	if err != nil {
		pm, err = quality.PerMetric(ds, filepath.Join(data, "interpretation_label"))
	}
	if err != nil {
		return nil, fmt.Errorf("eval corpus: %w", err)
	}
	if step <= 0 {
		step = ds.Step
	}
	if step%ds.Step != 0 && ds.Step%step != 0 {
		return nil, fmt.Errorf("eval corpus: --step %v and the data's %v do not divide one another", step, ds.Step)
	}
	c := &score.Corpus{Name: kind}
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for _, m := range pm.Machines {
		if !anyTrue(m.Labels) || constant(m.Test[0]) {
			continue
		}
		v, l := score.Resample(m.Test[0], m.Labels, ds.Step, step)
		c.Series = append(c.Series, score.FromLabels(m.Name+".csv", t0, step, v, l))
	}
	return c, nil
}

func anyTrue(b []bool) bool {
	for _, x := range b {
		if x {
			return true
		}
	}
	return false
}

func constant(v []float64) bool {
	for _, x := range v {
		if x != v[0] {
			return false
		}
	}
	return true
}
