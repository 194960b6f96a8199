package ruletest

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/wire"
)

func TestExpandValues(t *testing.T) {
	abs := point{absent: true}
	for _, tc := range []struct {
		in   string
		want []point
		err  string
	}{
		{in: "1 2 3", want: []point{{v: 1}, {v: 2}, {v: 3}}},
		{in: "0+10x3", want: []point{{v: 0}, {v: 10}, {v: 20}, {v: 30}}},
		{in: "5-2x2", want: []point{{v: 5}, {v: 3}, {v: 1}}},
		{in: "-1+1x2", want: []point{{v: -1}, {v: 0}, {v: 1}}},
		{in: "7x2", want: []point{{v: 7}, {v: 7}, {v: 7}}},
		{in: "1e-3+1e-3x1", want: []point{{v: 1e-3}, {v: 2e-3}}},
		{in: "1 _ stale 2", want: []point{{v: 1}, abs, abs, {v: 2}}},
		{in: "_x3", want: []point{abs, abs, abs}},
		{in: "Inf -Inf", want: []point{{v: math.Inf(1)}, {v: math.Inf(-1)}}},
		{in: "", err: "no values"},
		{in: "1 two", err: `term "two": "two" is not a number`},
		{in: "1+1xz", err: `repeat count "z"`},
		{in: "1+1x99999999", err: "larger than"},
	} {
		got, err := expandValues(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
	nan, err := expandValues("NaN")
	if err != nil || len(nan) != 1 || !math.IsNaN(nan[0].v) {
		t.Errorf("NaN: %v %v", nan, err)
	}
}

func TestParseSeries(t *testing.T) {
	sig, labels, err := parseSeries(`tcp_rtt_seconds{peer="10.0.0.1:5432", host="db\"1", cluster="c"}`)
	want := []wire.Label{{Name: "cluster", Value: "c"}, {Name: "host", Value: `db"1`}, {Name: "peer", Value: "10.0.0.1:5432"}}
	if err != nil || sig != "tcp_rtt_seconds" || !reflect.DeepEqual(labels, want) {
		t.Fatalf("got %q %v %v", sig, labels, err)
	}
	if sig, labels, err := parseSeries("up"); err != nil || sig != "up" || labels != nil {
		t.Fatalf("bare name: %q %v %v", sig, labels, err)
	}
	for in, msg := range map[string]string{
		`{a="b"}`:        "missing signal name",
		`x{a="b"`:        "missing closing }",
		`x{a=b}`:         "must be a quoted string",
		`x{a="b" c="d"}`: "expected , after label a",
		`x{a="b",a="c"}`: "given twice",
		`x{1a="b"}`:      "not a valid label name",
		`9x`:             "not a valid signal name",
	} {
		if _, _, err := parseSeries(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want %q", in, err, msg)
		}
	}
}
