package score

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/mciv/mciv/analyzer/replay"
)

// Series is one labelled file of a corpus.
type Series struct {
	// Name is the file's path under the corpus's data directory, with
	// forward slashes ("realTraffic/speed.csv").
	Name string
	// Times are the rows' times in Unix nanoseconds, Values their values
	// (NaN for a gap).
	Times  []int64
	Values []float64
	// Windows are the anomaly windows, sorted, in rows.
	Windows []Window
	// Signal is what the series is, as "signal" or "signal:stat"
	// (db_query_seconds:p99): only the rules of that signal (and stat)
	// judge it. "" lets every rule but static thresholds judge it (see Judges).
	Signal string
}

// Corpus is a labelled corpus: series in name order.
type Corpus struct {
	Name   string
	Series []Series
}

// Rows is the number of rows of all series.
func (c *Corpus) Rows() int {
	n := 0
	for _, s := range c.Series {
		n += len(s.Values)
	}
	return n
}

// WindowCount is the number of windows of all series.
func (c *Corpus) WindowCount() int {
	n := 0
	for _, s := range c.Series {
		n += len(s.Windows)
	}
	return n
}

// LabelsFile finds the windows file of a corpus directory: labels.json,
// else labels/combined_windows.json (NAB's layout), else the only JSON
// file in labels/.
func LabelsFile(dir string) (string, error) {
	for _, p := range []string{"labels.json", filepath.Join("labels", "combined_windows.json")} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			return filepath.Join(dir, p), nil
		}
	}
	m, _ := filepath.Glob(filepath.Join(dir, "labels", "*.json"))
	if len(m) == 1 {
		return m[0], nil
	}
	return "", fmt.Errorf("corpus %s: no labels.json or labels/combined_windows.json", dir)
}

// SignalsFile is the file beside labels.json that says which signal each
// series is: a JSON object mapping a glob of file names under data/
// (path.Match; "*" and "**" match every file) to a signal, written
// "signal" or "signal:stat". The first matching glob, in sorted order,
// wins; a file no glob matches has no signal.
const SignalsFile = "signals.json"

// SetSignal makes every series of c the signal sig ("signal" or
// "signal:stat"; "" lets every rule but static thresholds judge them).
func (c *Corpus) SetSignal(sig string) {
	for i := range c.Series {
		c.Series[i].Signal = sig
	}
}

// readSignals reads dir/signals.json into the series of c, when there is
// one.
func readSignals(dir string, c *Corpus) error {
	raw, err := os.ReadFile(filepath.Join(dir, SignalsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	var globs map[string]string
	if err := json.Unmarshal(raw, &globs); err != nil {
		return fmt.Errorf("corpus: %s: %w", filepath.Join(dir, SignalsFile), err)
	}
	keys := make([]string, 0, len(globs))
	for g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("corpus: %s: glob %q: %w", filepath.Join(dir, SignalsFile), g, err)
		}
		keys = append(keys, g)
	}
	slices.Sort(keys)
	for i := range c.Series {
		s := &c.Series[i]
		for _, g := range keys {
			if ok, _ := path.Match(g, s.Name); ok || g == "*" || g == "**" {
				s.Signal = globs[g]
				break
			}
		}
	}
	return nil
}

// Load reads a corpus laid out as NAB's: every *.csv under dir/data
// (timestamp column and value column as replay reads them; valueColumn ""
// for the default) and a labels file (LabelsFile) mapping each file's
// path under data/ to its windows, [[start, end], ...] with both ends
// inclusive timestamps. The signal of each series comes from
// SignalsFile, when there is one. A window covers the rows whose time lies within
// it; files missing from the labels have no windows. Load checks ctx
// before each file and stops with ctx's error, wrapped with dir, once ctx
// is done.
func Load(ctx context.Context, dir, valueColumn string) (*Corpus, error) {
	lp, err := LabelsFile(dir)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(lp)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	var labels map[string][][2]string
	if err := json.Unmarshal(raw, &labels); err != nil {
		return nil, fmt.Errorf("corpus: %s: %w", lp, err)
	}
	c := &Corpus{Name: filepath.Base(filepath.Clean(dir))}
	root := filepath.Join(dir, "data")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || filepath.Ext(path) != ".csv" {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		s, err := readSeries(path, valueColumn)
		if err != nil {
			return err
		}
		s.Name = filepath.ToSlash(rel)
		for _, w := range labels[s.Name] {
			from, err1 := replay.ParseTimestamp(w[0])
			to, err2 := replay.ParseTimestamp(w[1])
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("%s: window of %s: %w", lp, s.Name, err)
			}
			i := sort.Search(len(s.Times), func(i int) bool { return s.Times[i] >= from.UnixNano() })
			j := sort.Search(len(s.Times), func(i int) bool { return s.Times[i] > to.UnixNano() }) - 1
			if i <= j {
				s.Windows = append(s.Windows, Window{i, j})
			}
		}
		slices.SortFunc(s.Windows, func(a, b Window) int { return a.From - b.From })
		c.Series = append(c.Series, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("corpus %s: %w", dir, err)
	}
	if len(c.Series) == 0 {
		return nil, fmt.Errorf("corpus %s: no data/**/*.csv", dir)
	}
	if err := readSignals(dir, c); err != nil {
		return nil, err
	}
	return c, nil
}

// readSeries reads one CSV file.
func readSeries(path, valueColumn string) (Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return Series{}, err
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReaderSize(f, 1<<16))
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return Series{}, fmt.Errorf("%s: line 1: %w", path, err)
	}
	tc, vc, err := replay.Columns(header, valueColumn)
	if err != nil {
		return Series{}, fmt.Errorf("%s: line 1: %w", path, err)
	}
	var s Series
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return Series{}, fmt.Errorf("%s: %w", path, err)
		}
		t, err := replay.ParseTimestamp(rec[tc])
		if err != nil {
			return Series{}, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		v, err := replay.ParseValue(rec[vc])
		if err != nil {
			return Series{}, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		s.Times = append(s.Times, t.UnixNano())
		s.Values = append(s.Values, v)
	}
	return s, nil
}

// labelTime is how Write writes times: NAB's layout, UTC.
const labelTime = "2006-01-02 15:04:05.000000"

// Write writes c under dir as Load reads it: dir/data/<name> (header
// timestamp,value), dir/labels.json and, when series have signals,
// dir/signals.json.
func Write(dir string, c *Corpus) error {
	labels := make(map[string][][2]string, len(c.Series))
	signals := map[string]string{}
	for _, s := range c.Series {
		if s.Signal != "" {
			signals[s.Name] = s.Signal
		}
		p := filepath.Join(dir, "data", filepath.FromSlash(s.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
		if err := writeSeries(p, s); err != nil {
			return err
		}
		ws := make([][2]string, 0, len(s.Windows))
		for _, w := range s.Windows {
			ws = append(ws, [2]string{
				time.Unix(0, s.Times[w.From]).UTC().Format(labelTime),
				time.Unix(0, s.Times[w.To]).UTC().Format(labelTime),
			})
		}
		labels[s.Name] = ws
	}
	b, err := json.MarshalIndent(labels, "", " ")
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "labels.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	if len(signals) == 0 {
		return nil
	}
	// One signal for the whole corpus is written as "*".
	var one string
	for _, sig := range signals {
		one = sig
		break
	}
	if len(signals) == len(c.Series) && !slices.ContainsFunc(c.Series, func(s Series) bool { return s.Signal != one }) {
		signals = map[string]string{"*": one}
	}
	if b, err = json.MarshalIndent(signals, "", " "); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SignalsFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	return nil
}

func writeSeries(path string, s Series) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("corpus: %w", cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	w.WriteString("timestamp,value\n")
	var b []byte
	for i, t := range s.Times {
		b = time.Unix(0, t).UTC().AppendFormat(b[:0], "2006-01-02 15:04:05")
		b = append(b, ',')
		if v := s.Values[i]; v == v {
			b = strconv.AppendFloat(b, v, 'g', 8, 64)
		}
		b = append(b, '\n')
		w.Write(b)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	return nil
}
