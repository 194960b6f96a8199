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

// CSV replays a CSV with header `timestamp,value` (timestamp in Unix
// seconds or RFC 3339) through every rule of set on signal (every rule
// when signal is ""), each row's value standing for the rule's statistic
// in that interval: it is fed to each rule's detector and lifecycle as
// one series. It writes to out exactly one JSON line per row,
// {"ts":<unix seconds>,"value":v,"score":s,"firing":f} — score is the
// highest normalised detector score of those rules, firing whether any
// of their detectors fires on the row — and then, after the last row,
// one line per alert transition in time order:
// {"transition":"pending|cancelled|firing|resolved","rule":"...","ts":...,"value":v}.
// A value that is not finite is written as null. An input error names
// its line.
func CSV(in io.Reader, set *rules.Set, signal string, out io.Writer) (Summary, error) {
	var sum Summary
	type state struct {
		r    *rules.Rule
		det  detect.Detector
		life lifecycle.Alert
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
	cr.FieldsPerRecord = 2
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return sum, fmt.Errorf("replay: csv line 1: %w", err)
	}
	if !strings.EqualFold(strings.TrimSpace(header[0]), "timestamp") || !strings.EqualFold(strings.TrimSpace(header[1]), "value") {
		return sum, fmt.Errorf("replay: csv line 1: header must be timestamp,value, not %s,%s", header[0], header[1])
	}
	w := bufio.NewWriterSize(out, 1<<16)
	var (
		trs  []transition
		line []byte
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
		ts, err := parseTimestamp(rec[0])
		if err != nil {
			return sum, fmt.Errorf("replay: csv line %d: timestamp: %w", lineNo, err)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err != nil {
			return sum, fmt.Errorf("replay: csv line %d: value %q is not a number", lineNo, rec[1])
		}
		score, firing := 0.0, false
		for _, st := range states {
			res := st.det.Observe(ts, v)
			if s := res.Score; s > score && !math.IsInf(s, 0) {
				score = s
			}
			firing = firing || res.Firing
			tr := st.life.Step(ts, res.Firing, lifecycle.Timing{For: st.r.For, KeepFiringFor: st.r.KeepFiringFor})
			if tr != lifecycle.None {
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

// parseTimestamp reads Unix seconds (fractions allowed) or RFC 3339.
func parseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return time.Time{}, fmt.Errorf("%q is not a time", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither Unix seconds nor RFC 3339", s)
	}
	return t, nil
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
