package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mciv/mciv/analyzer/ruletest"
	"github.com/mciv/mciv/rules"
	"github.com/spf13/cobra"
)

func rulesCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Work with rule files"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE|DIR...",
		Short: "Check rule files; print every error as file:line:col and exit 1 if any",
		Long: `Check rule files; print every error as file:line:col and exit 1 if any.

A rule that is valid but probably does not do what its author meant (a
threshold on the retransmit or reset rate held with for, which the
collector's 250ms batches during a fault keep restarting) is printed as
"warning: file:line:col: rule NAME: ..." after the ok line; warnings do
not change the exit code. The analyzer logs the same warnings when it
loads the rules.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			set, err := rules.LoadFiles(args...)
			if err != nil {
				var list rules.Errors
				if errors.As(err, &list) {
					for _, item := range list {
						fmt.Fprintln(e.stdout, item.Error())
					}
				} else {
					fmt.Fprintln(e.stdout, err)
				}
				return exitCode(1)
			}
			fmt.Fprintf(e.stdout, "ok: %d rules in %d groups\n", set.NumRules(), set.NumGroups())
			for _, adv := range set.Advice() {
				fmt.Fprintln(e.stdout, "warning: "+adv.Error())
			}
			return nil
		},
	})
	cmd.AddCommand(rulesTestCmd(e))
	return cmd
}

func rulesTestCmd(e *env) *cobra.Command {
	var junit string
	cmd := &cobra.Command{
		Use:   "test FILE|DIR...",
		Short: "Run rule unit tests (promtool-style test files); exit 1 if any fails",
		Long: `Run unit tests of rules files, in the manner of promtool test rules.

A test file names rules files (relative to itself), gives input series in
compact notation ('0+10x100', '1 2 _ 3 stale') and lists the alerts that
must be firing at given times, with their labels and annotations.
See rules/default/tests/ for an example.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var results []ruletest.FileResult
			failed := false
			files, err := testFiles(args)
			if err != nil {
				return err
			}
			for _, f := range files {
				r := ruletest.RunFile(f)
				results = append(results, r)
				failed = failed || r.Failed()
				printTestResult(e.stdout, r)
			}
			if junit != "" {
				if err := writeJUnit(junit, results); err != nil {
					return err
				}
			}
			if failed {
				fmt.Fprintln(e.stdout, "FAILED")
				return exitCode(1)
			}
			fmt.Fprintln(e.stdout, "SUCCESS")
			return nil
		},
	}
	cmd.Flags().StringVar(&junit, "junit", "", "also write the results as JUnit XML to this file")
	return cmd
}

// testFiles expands directories to the *.yaml and *.yml files they hold.
func testFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		info, err := os.Stat(a)
		if err != nil || !info.IsDir() {
			files = append(files, a) // RunFile reports what cannot be read
			continue
		}
		n := len(files)
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, err := filepath.Glob(filepath.Join(a, pat))
			if err != nil {
				return nil, fmt.Errorf("rules test: %w", err)
			}
			files = append(files, m...)
		}
		if len(files) == n {
			return nil, fmt.Errorf("rules test: directory %s holds no *.yaml or *.yml test files", a)
		}
	}
	return files, nil
}

func printTestResult(w io.Writer, r ruletest.FileResult) {
	fmt.Fprintf(w, "Unit testing: %s\n", r.File)
	for _, err := range r.Errors {
		fmt.Fprintf(w, "  %v\n", err)
	}
	for _, t := range r.Tests {
		if len(t.Failures) == 0 {
			fmt.Fprintf(w, "  PASS %s\n", t.Name)
			continue
		}
		fmt.Fprintf(w, "  FAIL %s\n", t.Name)
		for _, f := range t.Failures {
			fmt.Fprintf(w, "    %s\n", f)
		}
	}
}

func writeJUnit(path string, results []ruletest.FileResult) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if err := ruletest.WriteJUnit(f, results); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return nil
}
