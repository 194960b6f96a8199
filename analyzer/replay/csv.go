// Package replay runs rules over recorded history, deterministically and
// as fast as the machine allows: a CSV of one series (each row's value
// standing for a rule's statistic in that interval, fed straight to the
// rules' detectors) or a file of sample batches recorded from NATS
// (evaluated by the full engine, as the analyzer would have). Output is
// JSON lines.
package replay

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/detect"
	"github.com/mciv/mciv/rules"
)

// Summary counts what a replay did.
type Summary struct {
	Rows        int // input rows (CSV) or batches (samples)
	Transitions int // alert transitions printed
	Rules       int // rules replayed
}

// transition is one alert transition of a CSV replay.
type transition struct {
	rule  string
	tr    lifecycle.Transition
	ts    time.Time
	value float64
}

// CSVOptions selects what a CSV replay reads.
type CSVOptions struct {
	// Signal limits the replay to the rules on this signal ("" for every
	// rule).
	Signal string
	// ValueColumn names the column that holds the values, by header name
	// or 1-based position. "" means the column named value, or the second
	// column of a two-column file.
	ValueColumn string
}

// CSV replays a CSV with header `timestamp,value` through every rule of
// set on signal; it is CSVWith with only a signal.
func CSV(in io.Reader, set *rules.Set, signal string, out io.Writer) (Summary, error) {
	return CSVWith(in, set, CSVOptions{Signal: signal}, out)
}

// CSVWith replays a CSV whose header names a timestamp column
// (`timestamp`, `time` or `ts`; else the first column) and a value column
// (see CSVOptions; other columns are ignored) through every rule of set on
// opt.Signal (every rule when it is ""), each row's value standing for
// the rule's statistic in that interval: it is fed to each rule's
// detector and lifecycle as one series. Timestamps are read by
// ParseTimestamp. It writes to out exactly one JSON line per row,
// {"ts":<unix seconds>,"value":v,"score":s,"firing":f} — score is the
// highest normalised detector score of those rules, firing whether any
// of their detectors fires on the row — and then, after the last row,
// one line per alert transition in time order:
// {"transition":"pending|cancelled|firing|resolved","rule":"...","ts":...,"value":v}.
// A value that is not finite, or empty, is written as null. An input
// error names its line.
func CSVWith(in io.Reader, set *rules.Set, opt CSVOptions, out io.Writer) (Summary, error) {
	var sum Summary
	signal := opt.Signal
	type state struct {
		r    *rules.Rule
		det  detect.Detector
		life lifecycle.Alert
		ev   rules.EvidenceRun
	}
	var states []*state
	for _, r := range set.Rules() {
		if signal == "" || r.Signal == signal {
			states = append(states, &state{r: r, det: r.Detector.New()})
		}
	}
	if len(states) == 0 {
		if signal == "" {
			return sum, errors.New("replay: no rules")
		}
		return sum, fmt.Errorf("replay: no rule watches signal %q", signal)
	}
	sum.Rules = len(states)

	cr := csv.NewReader(bufio.NewReaderSize(in, 1<<16))
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return sum, fmt.Errorf("replay: csv line 1: %w", err)
	}
	tcol, vcol, err := Columns(header, opt.ValueColumn)
	if err != nil {
		return sum, fmt.Errorf("replay: csv line 1: %w", err)
	}
	cr.FieldsPerRecord = len(header)
	w := bufio.NewWriterSize(out, 1<<16)
	var (
		trs  []transition
		line []byte
		prev time.Time
	)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		lineNo, _ := cr.FieldPos(0)
		if err != nil {
			return sum, fmt.Errorf("replay: csv: %w", err)
		}
		ts, err := ParseTimestamp(rec[tcol])
		if err != nil {
			return sum, fmt.Errorf("replay: csv line %d: timestamp: %w", lineNo, err)
		}
		v, err := ParseValue(rec[vcol])
		if err != nil {
			return sum, fmt.Errorf("replay: csv line %d: %w", lineNo, err)
		}
		score, firing := 0.0, false
		var covered time.Duration // a row covers the time since the previous one
		if !prev.IsZero() && ts.After(prev) {
			covered = ts.Sub(prev)
		}
		prev = ts
		for _, st := range states {
			res := st.det.Observe(ts, v)
			if s := res.Score; s > score && !math.IsInf(s, 0) {
				score = s
			}
			firing = firing || res.Firing
			if tr := st.life.StepRule(st.r, &st.ev, ts, covered, res, v); tr != lifecycle.None {
				trs = append(trs, transition{rule: st.r.Alert, tr: tr, ts: ts, value: v})
			}
		}
		line = append(line[:0], `{"ts":`...)
		line = appendTime(line, ts)
		line = append(line, `,"value":`...)
		line = appendFloat(line, v)
		line = append(line, `,"score":`...)
		line = appendFloat(line, score)
		line = append(line, `,"firing":`...)
		line = strconv.AppendBool(line, firing)
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			return sum, fmt.Errorf("replay: %w", err)
		}
		sum.Rows++
	}
	for _, t := range trs {
		line = append(line[:0], `{"transition":`...)
		line = strconv.AppendQuote(line, transitionName(t.tr))
		line = append(line, `,"rule":`...)
		line = strconv.AppendQuote(line, t.rule)
		line = append(line, `,"ts":`...)
		line = appendTime(line, t.ts)
		line = append(line, `,"value":`...)
		line = appendFloat(line, t.value)
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			return sum, fmt.Errorf("replay: %w", err)
		}
	}
	sum.Transitions = len(trs)
	if err := w.Flush(); err != nil {
		return sum, fmt.Errorf("replay: %w", err)
	}
	return sum, nil
}

// transitionName names a transition by the state it leads to, as alerts do.
func transitionName(tr lifecycle.Transition) string {
	switch tr {
	case lifecycle.Pended:
		return "pending"
	case lifecycle.Cancelled:
		return "cancelled"
	case lifecycle.Fired:
		return "firing"
	case lifecycle.Resolved:
		return "resolved"
	}
	return tr.String()
}

// Columns finds the timestamp and value columns of a CSV header: the
// timestamp is the column named timestamp, time or ts (any case), else the
// first; the value is valueColumn (a header name, or a 1-based position),
// else the column named value, else the other column of a two-column
// header.
func Columns(header []string, valueColumn string) (tcol, vcol int, err error) {
	find := func(names ...string) int {
		for i, h := range header {
			for _, n := range names {
				if strings.EqualFold(strings.TrimSpace(h), n) {
					return i
				}
			}
		}
		return -1
	}
	if tcol = find("timestamp", "time", "ts"); tcol < 0 {
		tcol = 0
	}
	switch {
	case valueColumn != "":
		if vcol = find(valueColumn); vcol < 0 {
			if n, err := strconv.Atoi(valueColumn); err == nil && n >= 1 && n <= len(header) {
				vcol = n - 1
			}
		}
		if vcol < 0 {
			return 0, 0, fmt.Errorf("no column %q in header %s", valueColumn, strings.Join(header, ","))
		}
	case find("value") >= 0:
		vcol = find("value")
	case len(header) == 2:
		vcol = 1 - tcol
	default:
		return 0, 0, fmt.Errorf("header %s has no value column; name one with --value-column", strings.Join(header, ","))
	}
	if vcol == tcol {
		return 0, 0, fmt.Errorf("value column %q is the timestamp column", header[vcol])
	}
	return tcol, vcol, nil
}

// ParseValue reads a number; an empty field (or NaN, null) is NaN.
func ParseValue(s string) (float64, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "null", "nan", "na":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q is not a number", s)
	}
	return v, nil
}

// msThreshold separates Unix seconds from milliseconds: a number at least
// this large is milliseconds (1e11 s is the year 5138, 1e11 ms 1973).
const msThreshold = 1e11

// timeLayouts are the layouts ParseTimestamp tries after numbers, with a
// zone and without one (then UTC).
var timeLayouts = [...]string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 Z07:00",
	"2006-01-02 15:04:05.999999999 -0700",
	"2006-01-02 15:04:05.999999999 MST",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTimestamp reads Unix seconds or milliseconds (fractions allowed;
// numbers of magnitude 1e11 or more are milliseconds), RFC 3339, or
// `YYYY-MM-DD HH:MM:SS[.ffffff]` with or without a zone (UTC when absent).
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return time.Time{}, fmt.Errorf("%q is not a time", s)
		}
		if math.Abs(f) >= msThreshold {
			ms, frac := math.Modf(f)
			return time.UnixMilli(int64(ms)).Add(time.Duration(math.Round(frac * 1e6))).UTC(), nil
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither Unix seconds or milliseconds, RFC 3339 nor YYYY-MM-DD HH:MM:SS", s)
}

// appendTime appends t as Unix seconds, with a fraction only when needed.
func appendTime(b []byte, t time.Time) []byte {
	b = strconv.AppendInt(b, t.Unix(), 10)
	if ns := t.Nanosecond(); ns != 0 {
		frac := strconv.AppendInt(nil, int64(ns)+1e9, 10)[1:] // 9 digits, zero padded
		b = append(b, '.')
		b = append(b, strings.TrimRight(string(frac), "0")...)
	}
	return b
}

// appendFloat appends v as a JSON number, or null when it is not finite.
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
