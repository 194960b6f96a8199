package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mciv/mciv/analyzer/replay"
	"github.com/mciv/mciv/rules"
)

func replayCmd(e *env) *cobra.Command {
	var (
		rulePaths []string
		csvPath   string
		samples   string
		signal    string
		jsonl     bool
		valueCol  string
	)
	cmd := &cobra.Command{
		Use:   "replay --rules PATH... (--csv FILE [--signal NAME] | --samples FILE) --jsonl",
		Short: "Replay history through rules: a CSV series, or sample batches recorded with mciv record",
		Long: `Replay history through rules, deterministically and as fast as possible.

With --csv, the file (header timestamp,value, or more columns with
--value-column; timestamps in Unix seconds or milliseconds, RFC 3339, or
YYYY-MM-DD HH:MM:SS[.ffffff] with or without a zone, UTC when absent) is one series whose values stand for a rule's statistic in each
interval: they go straight to the detector of every rule on --signal (every
rule without it). One JSON line per row, {"ts","value","score","firing"}
(score: the highest normalised score of those rules; firing: whether any of
their detectors fires), then one line per alert transition.

With --samples, batches recorded by mciv record go through the full engine
as the analyzer would have evaluated them; one JSON line per alert firing
or resolving.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if (csvPath == "") == (samples == "") {
				return errors.New("replay: give exactly one of --csv and --samples")
			}
			if samples != "" && signal != "" {
				return errors.New("replay: --signal applies to --csv only")
			}
			if !jsonl {
				return errors.New("replay: --jsonl is the only output format; pass it")
			}
			set, err := loadRulesOrReport(e.stderr, rulePaths)
			if err != nil {
				return err
			}
			in, err := openInput(csvPath + samples)
			if err != nil {
				return err
			}
			defer in.Close()
			if csvPath != "" {
				sum, err := replay.CSVWith(in, set, replay.CSVOptions{Signal: signal, ValueColumn: valueCol}, e.stdout)
				if err != nil {
					return err
				}
				e.logger().Debug("replay done", "rows", sum.Rows, "rules", sum.Rules, "transitions", sum.Transitions)
				return nil
			}
			sum, err := replay.Samples(in, set, e.stdout)
			if err != nil {
				return err
			}
			e.logger().Info("replay done", "batches", sum.Batches, "alerts", sum.Alerts, "ignored", sum.Ignored,
				"evaluation_errors", sum.Errors, "from", sum.FirstTime, "to", sum.LastTime)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&rulePaths, "rules", nil, "rules files or directories (default: the built-in rules)")
	cmd.Flags().StringVar(&csvPath, "csv", "", "CSV file with header timestamp,value (- for stdin)")
	cmd.Flags().StringVar(&samples, "samples", "", "samples file written by mciv record (- for stdin)")
	cmd.Flags().StringVar(&signal, "signal", "", "with --csv: replay the rules on this signal only")
	cmd.Flags().StringVar(&valueCol, "value-column", "", "with --csv: the column of values, by header name or 1-based position (default: value)")
	cmd.Flags().BoolVar(&jsonl, "jsonl", false, "print JSON lines (the only format)")
	return cmd
}

// loadRulesOrDefault loads rules files, or the built-in rules when none
// are named.
func loadRulesOrDefault(paths []string) (*rules.Set, error) {
	if len(paths) == 0 {
		return rules.LoadDefault()
	}
	return rules.LoadFiles(paths...)
}

// loadRulesOrReport is loadRulesOrDefault for a command: rules-file errors
// are printed to stderr one per line (file:line:col) and become exit
// status 1.
func loadRulesOrReport(stderr io.Writer, paths []string) (*rules.Set, error) {
	set, err := loadRulesOrDefault(paths)
	if err != nil {
		var list rules.Errors
		if errors.As(err, &list) {
			for _, item := range list {
				fmt.Fprintln(stderr, item.Error())
			}
			return nil, exitCode(1)
		}
		return nil, err
	}
	return set, nil
}

// openInput opens a file, or stdin for "-".
func openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return f, nil
}
