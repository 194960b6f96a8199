// Package quality measures how well the detectors of analyzer/detect find
// labelled anomalies in real server metrics: the Server Machine Dataset
// (SMD, 1-minute samples, 38 metrics per machine) and the Application
// Server Dataset (ASD, 5-minute samples, 19 metrics per server) kept in
// ../shared/data (see its README).
//
// Method. Each detector runs on each metric of a machine as its own
// series, as a rule with `by: [cluster, host, ...]` would: it is fed the
// machine's train half first (unlabelled; it serves as the warm-up and
// baseline history) and then its test half, one row per step, with
// timestamps row·step from the Unix epoch. The machine's score for a test
// row is the highest score of its metrics in that row, and the machine
// fires in a row when any metric's detector fires (labels are per machine,
// not per metric). The test rows are then scored with:
//
//   - point-adjusted F1 (the usual SMD metric, OmniAnomaly's eval_methods):
//     a labelled segment counts as wholly detected when any row in it is
//     detected. "best" sweeps one score threshold shared by every machine
//     of a dataset and keeps the best F1; "default" uses the detectors'
//     own firing decisions at their configured thresholds.
//   - a NAB-style window score (standard profile: A_TP=1, A_FP=0.11,
//     A_FN=1; method in ../shared/research/detection.md §2): each labelled
//     segment is a window; the earliest detection in a window earns up to
//     1 (scaled sigmoid of its position), a missed window costs 1, a
//     detection outside windows costs up to 0.11 depending on its distance
//     after the previous window. Normalised so that no detection scores 0
//     and a detection on the first row of every window with no false
//     positives scores 100. There is no probationary period: the train half
//     already warmed the detectors. "best" sweeps the score threshold as
//     NAB's optimiser does; "default" uses the firing decisions.
//
// Point adjustment flatters detectors that fire often: the table also
// gives the F1 of flagging every row, the floor any detector must beat.
//
// Per-metric view. PerMetric re-labels each metric with only the
// anomalies whose interpretation label lists it, which judges a detector
// the way a rule on one signal is used.
//
// Tuning. The train halves carry no labels; they only warm the detectors
// up. Parameters were tuned on the first half of every test half
// (TestTune: machine level, baselines, CUSUM k, min_delta; then
// TestTunePerMetric: thresholds per metric) and the table reports the
// second half ("held-out") separately from the tuning half. Both datasets
// are min-max scaled to [0,1], so the benchmark's min_delta of 0.1 is a
// tenth of each metric's range.
package quality

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine is one machine (server) of a dataset.
type Machine struct {
	Name string
	// Train and Test hold one column per metric.
	Train, Test [][]float64
	// Labels marks the anomalous test rows.
	Labels []bool
}

// Dataset is a set of machines sampled at one step.
type Dataset struct {
	Name     string
	Step     time.Duration
	Machines []Machine
}

// DataDir finds the labelled data: $MCIV_DATA when set, else
// ../shared/data beside the repository holding the working directory.
func DataDir() (string, error) {
	if d := os.Getenv("MCIV_DATA"); d != "" {
		if _, err := os.Stat(d); err != nil {
			return "", fmt.Errorf("MCIV_DATA: %w", err)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the data: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "data")
			if _, err := os.Stat(d); err != nil {
				return "", fmt.Errorf("no labelled data at %s (set MCIV_DATA): %w", d, err)
			}
			return d, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory and MCIV_DATA not set")
		}
		dir = parent
	}
}

// LoadSMD loads the SMD machines of dir/smd.
func LoadSMD(dataDir string) (*Dataset, error) {
	return Load("SMD", filepath.Join(dataDir, "smd"), time.Minute)
}

// LoadASD loads the ASD servers of dir/asd.
func LoadASD(dataDir string) (*Dataset, error) {
	return Load("ASD", filepath.Join(dataDir, "asd"), 5*time.Minute)
}

// Load reads every machine NAME of dir that has NAME_train.csv.gz,
// NAME_test.csv.gz and NAME_test_label.csv.gz, in name order.
func Load(name, dir string, step time.Duration) (*Dataset, error) {
	tests, err := filepath.Glob(filepath.Join(dir, "*_test.csv.gz"))
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	if len(tests) == 0 {
		return nil, fmt.Errorf("no *_test.csv.gz in %s", dir)
	}
	slices.Sort(tests)
	ds := &Dataset{Name: name, Step: step}
	for _, tp := range tests {
		base := strings.TrimSuffix(tp, "_test.csv.gz")
		m := Machine{Name: filepath.Base(base)}
		if m.Train, err = readColumns(base + "_train.csv.gz"); err != nil {
			return nil, err
		}
		if m.Test, err = readColumns(tp); err != nil {
			return nil, err
		}
		lab, err := readColumns(base + "_test_label.csv.gz")
		if err != nil {
			return nil, err
		}
		if len(lab) != 1 || len(m.Test) == 0 || len(lab[0]) != len(m.Test[0]) || len(m.Train) != len(m.Test) {
			return nil, fmt.Errorf("%s: labels, train and test do not match in shape", m.Name)
		}
		m.Labels = make([]bool, len(lab[0]))
		for i, v := range lab[0] {
			m.Labels[i] = v != 0
		}
		ds.Machines = append(ds.Machines, m)
	}
	return ds, nil
}

// readColumns reads a gzip CSV with a header row into columns.
func readColumns(path string) ([][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading data: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cols [][]float64
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Split(sc.Text(), ",")
		if line == 1 {
			cols = make([][]float64, len(fields))
			continue
		}
		if len(fields) != len(cols) {
			return nil, fmt.Errorf("%s:%d: %d fields, want %d", path, line, len(fields), len(cols))
		}
		for i, s := range fields {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			cols[i] = append(cols[i], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cols, nil
}
