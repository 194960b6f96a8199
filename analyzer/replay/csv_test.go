package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mciv/mciv/rules"
)

const twoRules = `groups:
  - name: g
    rules:
      - alert: High
        signal: db_query_seconds
        stat: p99
        detector: {type: threshold, op: ">", value: 1}
        for: 2s
      - alert: VeryHigh
        signal: db_query_seconds
        stat: p99
        detector: {type: threshold, op: ">", value: 10}
      - alert: Other
        signal: tcp_rtt_seconds
        stat: p99
        detector: {type: threshold, op: ">", value: 0}
`

func mustRules(t *testing.T, src string) *rules.Set {
	t.Helper()
	g, err := rules.Parse("r.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return &rules.Set{Groups: g}
}

func TestCSV(t *testing.T) {
	in := "timestamp,value\n" +
		"100,0.5\n" +
		"101,2\n" +
		"102,2\n" +
		"103,20\n" +
		"1970-01-01T00:01:44.5Z,0.5\n" +
		"105,NaN\n"
	var out bytes.Buffer
	sum, err := CSV(strings.NewReader(in), mustRules(t, twoRules), "db_query_seconds", &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if sum.Rows != 6 || sum.Rules != 2 || len(lines) != 6+sum.Transitions {
		t.Fatalf("summary %+v, %d lines:\n%s", sum, len(lines), out.String())
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
	}
	rows := []string{
		`{"ts":100,"value":0.5,"score":0,"firing":false}`,
		`{"ts":101,"value":2,"score":`,
		`{"ts":102,"value":2,"score":`,
		`{"ts":103,"value":20,"score":`,
		`{"ts":104.5,"value":0.5,"score":0,"firing":false}`,
		`{"ts":105,"value":null,"score":0,"firing":false}`,
	}
	for i, want := range rows {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("row %d: %s, want prefix %s", i+1, lines[i], want)
		}
	}
	for i := 1; i <= 3; i++ {
		if !strings.HasSuffix(lines[i], `"firing":true}`) {
			t.Errorf("row %d does not fire: %s", i+1, lines[i])
		}
	}
	trs := strings.Join(lines[6:], "\n")
	want := strings.Join([]string{
		`{"transition":"pending","rule":"High","ts":101,"value":2}`,
		`{"transition":"firing","rule":"High","ts":103,"value":20}`,
		`{"transition":"firing","rule":"VeryHigh","ts":103,"value":20}`,
		`{"transition":"resolved","rule":"High","ts":104.5,"value":0.5}`,
		`{"transition":"resolved","rule":"VeryHigh","ts":104.5,"value":0.5}`,
	}, "\n")
	if trs != want {
		t.Fatalf("transitions:\n%s\nwant:\n%s", trs, want)
	}

	// Same input, same output.
	var again bytes.Buffer
	if _, err := CSV(strings.NewReader(in), mustRules(t, twoRules), "db_query_seconds", &again); err != nil || again.String() != out.String() {
		t.Fatalf("not deterministic: %v", err)
	}
}

func TestCSVErrors(t *testing.T) {
	set := mustRules(t, twoRules)
	for in, want := range map[string]string{
		"":                             "csv line 1",
		"time,value\n1,1\n":            "header must be timestamp,value",
		"timestamp,value\n1,1\nx,2\n":  `csv line 3: timestamp: "x" is neither`,
		"timestamp,value\n1,1\n2,y\n":  `csv line 3: value "y" is not a number`,
		"timestamp,value\n1,1,1\n":     "wrong number of fields",
		"timestamp,value\n1,1\n2,2\n3": "wrong number of fields",
	} {
		_, err := CSV(strings.NewReader(in), set, "", &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	if _, err := CSV(strings.NewReader("timestamp,value\n"), set, "nope", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `no rule watches signal "nope"`) {
		t.Errorf("unknown signal: %v", err)
	}
}

func BenchmarkCSV(b *testing.B) {
	var in strings.Builder
	in.WriteString("timestamp,value\n")
	for i := range 100000 {
		fmt.Fprintf(&in, "%d,%g\n", 1700000000+i, float64(i%100)/10)
	}
	set, err := rules.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := CSV(strings.NewReader(in.String()), set, "", discard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*100000/b.Elapsed().Seconds(), "rows/s")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
