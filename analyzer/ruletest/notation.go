package ruletest

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/mciv/mciv/internal/wire"
)

// point is one input value; absent points are intervals without a sample.
type point struct {
	v      float64
	absent bool
}

// expandValues expands promtool's compact notation: space-separated terms,
// each a number (also Inf, -Inf, NaN), `_` (no sample), `stale` (no
// sample: mciv has no staleness markers, a series simply stops), `a+bxn`
// (a, a+b, ..., a+n·b: n+1 values), `a-bxn`, `axn` (a, n+1 times) or `_xn`
// (n intervals without a sample).
func expandValues(s string) ([]point, error) {
	var out []point
	for term := range strings.FieldsSeq(s) {
		pts, err := expandTerm(term)
		if err != nil {
			return nil, fmt.Errorf("values: term %q: %w", term, err)
		}
		out = append(out, pts...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("values: no values")
	}
	return out, nil
}

// maxExpand bounds one term's expansion so that a typo cannot exhaust memory.
const maxExpand = 1_000_000

func expandTerm(term string) ([]point, error) {
	switch term {
	case "_", "stale":
		return []point{{absent: true}}, nil
	}
	x := strings.LastIndexByte(term, 'x')
	if x <= 0 {
		v, err := parseNumber(term)
		if err != nil {
			return nil, err
		}
		return []point{{v: v}}, nil
	}
	n, err := strconv.Atoi(term[x+1:])
	if err != nil || n < 0 {
		return nil, fmt.Errorf("repeat count %q is not a non-negative integer", term[x+1:])
	}
	if n > maxExpand {
		return nil, fmt.Errorf("repeat count %d is larger than %d", n, maxExpand)
	}
	head := term[:x]
	if head == "_" {
		return slices.Repeat([]point{{absent: true}}, n), nil
	}
	start, step := head, "0"
	if i := signIndex(head); i > 0 {
		start, step = head[:i], head[i:]
		if step[0] == '+' {
			step = step[1:]
		}
	}
	a, err := parseNumber(start)
	if err != nil {
		return nil, err
	}
	b, err := parseNumber(step)
	if err != nil {
		return nil, err
	}
	out := make([]point, 0, n+1)
	for i := range n + 1 {
		out = append(out, point{v: a + float64(i)*b})
	}
	return out, nil
}

// signIndex returns the index of the + or - that separates the start from
// the step of `a+bxn`, or -1; signs of exponents (1e-3) do not count.
func signIndex(s string) int {
	for i := 1; i < len(s); i++ {
		if (s[i] == '+' || s[i] == '-') && s[i-1] != 'e' && s[i-1] != 'E' {
			return i
		}
	}
	return -1
}

func parseNumber(s string) (float64, error) {
	switch strings.ToLower(s) {
	case "inf", "+inf":
		return math.Inf(1), nil
	case "-inf":
		return math.Inf(-1), nil
	case "nan":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// parseSeries parses `signal{name="value", ...}` (the braces are optional).
// The labels come back sorted by name, as wire.Series wants them.
func parseSeries(s string) (string, []wire.Label, error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '{')
	if open < 0 {
		if s == "" {
			return "", nil, fmt.Errorf("series: empty")
		}
		return s, nil, validSignal(s)
	}
	signal := strings.TrimSpace(s[:open])
	if err := validSignal(signal); err != nil {
		return "", nil, err
	}
	if !strings.HasSuffix(s, "}") {
		return "", nil, fmt.Errorf("series %q: missing closing }", s)
	}
	rest := strings.TrimSpace(s[open+1 : len(s)-1])
	var labels []wire.Label
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return "", nil, fmt.Errorf("series %q: expected name=\"value\" at %q", s, rest)
		}
		name := strings.TrimSpace(rest[:eq])
		if !validLabelName(name) {
			return "", nil, fmt.Errorf("series %q: %q is not a valid label name", s, name)
		}
		rest = strings.TrimSpace(rest[eq+1:])
		quoted, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return "", nil, fmt.Errorf("series %q: the value of label %s must be a quoted string", s, name)
		}
		value, _ := strconv.Unquote(quoted)
		for _, l := range labels {
			if l.Name == name {
				return "", nil, fmt.Errorf("series %q: label %s given twice", s, name)
			}
		}
		labels = append(labels, wire.Label{Name: name, Value: value})
		rest = strings.TrimSpace(rest[len(quoted):])
		if rest != "" {
			if rest[0] != ',' {
				return "", nil, fmt.Errorf("series %q: expected , after label %s", s, name)
			}
			rest = strings.TrimSpace(rest[1:])
		}
	}
	slices.SortFunc(labels, func(a, b wire.Label) int { return strings.Compare(a.Name, b.Name) })
	return signal, labels, nil
}

func validSignal(s string) error {
	if s == "" {
		return fmt.Errorf("series: missing signal name before {")
	}
	for i, c := range s {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("series: %q is not a valid signal name", s)
		}
	}
	return nil
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
