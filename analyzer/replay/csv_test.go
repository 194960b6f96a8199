package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

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
		"t,a,b\n1,1,1\n":               "has no value column",
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

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for in, w := range map[string]time.Time{
		"2026-01-05 00:00:00":               want,
		"2026-01-05 00:00:00.000000":        want,
		"2026-01-05T00:00:00":               want,
		"2026-01-05T00:00:00Z":              want,
		"2026-01-05 01:00:00+01:00":         want,
		"2026-01-05 01:00:00 +0100":         want,
		"2026-01-05T01:00:00.5+01:00":       want.Add(500 * time.Millisecond),
		"2026-01-05 00:00:00.250000":        want.Add(250 * time.Millisecond),
		"1767571200":                        want,
		"1767571200.5":                      want.Add(500 * time.Millisecond),
		"1767571200000":                     want,
		"1767571200250":                     want.Add(250 * time.Millisecond),
		" 2026-01-05 00:00:00 ":             want,
		"2026-01-05 00:00:00.123456789 UTC": want.Add(123456789),
	} {
		got, err := ParseTimestamp(in)
		if err != nil || !got.Equal(w) {
			t.Errorf("%q: %v %v, want %v", in, got, err, w)
		}
	}
	for _, in := range []string{"", "x", "2026-13-05 00:00:00", "NaN", "05/01/2026"} {
		if _, err := ParseTimestamp(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestCSVValueColumn(t *testing.T) {
	in := "host,timestamp,a,b\n" +
		"x,2026-01-05 00:00:00,1,0.5\n" +
		"x,2026-01-05 00:00:01,1,20\n"
	set := mustRules(t, twoRules)
	for _, col := range []string{"b", "4"} {
		var out bytes.Buffer
		if _, err := CSVWith(strings.NewReader(in), set, CSVOptions{Signal: "db_query_seconds", ValueColumn: col}, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), `{"ts":1767571201,"value":20,`) {
			t.Errorf("column %s: %s", col, out.String())
		}
	}
	if _, err := CSVWith(strings.NewReader(in), set, CSVOptions{ValueColumn: "c"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `no column "c"`) {
		t.Errorf("unknown column: %v", err)
	}
	if _, err := CSVWith(strings.NewReader(in), set, CSVOptions{ValueColumn: "timestamp"}, &bytes.Buffer{}); err == nil {
		t.Error("timestamp as value: no error")
	}
	// An empty value is a gap (null), not an error.
	var out bytes.Buffer
	if _, err := CSV(strings.NewReader("timestamp,value\n1,\n"), set, "", &out); err != nil || !strings.Contains(out.String(), `"value":null`) {
		t.Errorf("empty value: %v %s", err, out.String())
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

// TestCSVForCountsFromTheLead: replay steps alerts like the engine: at
// 1-minute steps a spike auto fires at its second sample, announced by
// the first, pages there under `for: 5s` (the detector's lead, the
// minute the sample covers, counts toward it), while an unannounced lone
// one never fires, so nothing even goes pending.
func TestCSVForCountsFromTheLead(t *testing.T) {
	const src = `groups:
  - name: g
    rules:
      - alert: Anomaly
        signal: db_query_seconds
        stat: p99
        detector: {type: auto, direction: up}
        for: 5s
`
	for _, tc := range []struct {
		first string
		want  string
	}{
		{"102.5", `"transition":"firing"`},
		{"100", ""},
	} {
		rnd := rand.New(rand.NewPCG(41, 1))
		var in strings.Builder
		in.WriteString("timestamp,value\n")
		const at = 2000
		for i := range at + 3 {
			v := fmt.Sprint(100 + rnd.NormFloat64())
			switch i {
			case at:
				v = tc.first
			case at + 1:
				v = "106"
			}
			fmt.Fprintf(&in, "%d,%s\n", 60*i, v)
		}
		var out bytes.Buffer
		if _, err := CSV(strings.NewReader(in.String()), mustRules(t, src), "db_query_seconds", &out); err != nil {
			t.Fatal(err)
		}
		var trs []string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, `{"transition"`) {
				trs = append(trs, l)
			}
		}
		if tc.want == "" {
			if len(trs) != 0 {
				t.Errorf("first %s: transitions %q, want none", tc.first, trs)
			}
			continue
		}
		if len(trs) == 0 || !strings.HasPrefix(trs[0], "{"+tc.want+`,"rule":"Anomaly","ts":120060,`) {
			t.Errorf("first %s: transitions %q, want the first %s at row %d", tc.first, trs, tc.want, at+1)
		}
	}
}
