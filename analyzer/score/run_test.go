package score

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer/replay"
	"github.com/mciv/mciv/rules"
)

const testRules = `groups:
  - name: g
    rules:
      - alert: Above5
        signal: x
        stat: max
        detector: {type: threshold, op: ">", value: 5}
      - alert: Above5For3
        signal: x
        stat: max
        detector: {type: threshold, op: ">", value: 5}
        for: 3m
`

// testCorpus is two series at 1-minute steps: one with a step to 10 at
// row 500 (window 480..579), one flat with no windows.
func testCorpus() *Corpus {
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).UnixNano()
	mk := func(name string, step bool) Series {
		s := Series{Name: name}
		for i := range 1000 {
			s.Times = append(s.Times, t0+int64(i)*int64(time.Minute))
			v := 1.0
			if step && i >= 500 && i < 520 {
				v = 10
			}
			s.Values = append(s.Values, v)
		}
		if step {
			s.Windows = []Window{{480, 579}}
		}
		return s
	}
	return &Corpus{Name: "t", Series: []Series{mk("a/step.csv", true), mk("flat.csv", false)}}
}

func TestWriteLoad(t *testing.T) {
	dir := t.TempDir()
	c := testCorpus()
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	got, err := Load(context.Background(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Series) != 2 || got.Series[0].Name != "a/step.csv" || got.Series[1].Name != "flat.csv" {
		t.Fatalf("series %+v", got.Series)
	}
	s := got.Series[0]
	if len(s.Values) != 1000 || s.Values[500] != 10 || s.Times[1]-s.Times[0] != int64(time.Minute) {
		t.Fatalf("values or times differ")
	}
	if len(s.Windows) != 1 || s.Windows[0] != (Window{480, 579}) {
		t.Fatalf("windows %v", s.Windows)
	}
	labels, _ := os.ReadFile(filepath.Join(dir, "labels.json"))
	if !strings.Contains(string(labels), `"2026-01-05 08:00:00.000000"`) {
		t.Errorf("labels not in NAB's layout: %s", labels)
	}
	if _, err := Load(context.Background(), t.TempDir(), ""); err == nil {
		t.Error("empty dir: no error")
	}
}

func TestEvaluate(t *testing.T) {
	c := testCorpus()
	c.SetSignal("x") // the rules' own: static thresholds judge only it
	res, err := Evaluate(context.Background(), parseSet(t, testRules), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[2].Name != AllRules {
		t.Fatalf("results %+v", res)
	}
	// Above5 pages at row 500: 20 rows into a 100-row window.
	w, _ := Weights(1000, []Window{{480, 579}}, Profiles()[0])
	want := Normalise(w[500], 1, Profiles()[0])
	if r := res[0]; math.Abs(r.Onsets[0]-want) > 1e-9 || r.Pages != 1 || r.TP != 1 {
		t.Errorf("Above5: %+v, want onsets %g", r, want)
	}
	// for: 3m pages three rows later, which is worth less.
	if r := res[1]; r.Pages != 1 || !(r.Onsets[0] < res[0].Onsets[0]) {
		t.Errorf("Above5For3: %+v", r)
	}
	// The threshold detector scores the step rows too.
	if r := res[0]; math.Abs(r.Swept[0]-want) > 1e-9 {
		t.Errorf("swept %g, want %g", r.Swept[0], want)
	}
	if r := res[2]; r.Pages != 2 || math.Abs(r.Onsets[0]-want) > 1e-9 {
		t.Errorf("all rules: %+v", r)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, testCorpus(), res); err != nil || !strings.Contains(b.String(), "| Above5 | threshold") {
		t.Errorf("table: %v\n%s", err, b.String())
	}
}

// TestWriteTableNotApplicable: a reference row prints "–" for its
// onsets, pages and windows found, and a rule's row prints as before.
func TestWriteTableNotApplicable(t *testing.T) {
	nan := math.NaN()
	res := []Result{
		{Name: "r", Detector: "zscore", Onsets: [3]float64{12.34, -5, 0}, Swept: [3]float64{50, 40.05, 60.96}, Pages: 7, TP: 3, Series: 2},
		{Name: ReferenceRandom, Detector: "random", Onsets: [3]float64{nan, nan, nan}, Swept: [3]float64{11, 2.44, 20}, Pages: -1, TP: -1, Series: 2},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, testCorpus(), res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| r | zscore | 12.3 | -5.0 | 0.0 | 50.0 | 40.0 | 61.0 | 7 | 3 | 2 |\n",
		"| (reference) random | random | – | – | – | 11.0 | 2.4 | 20.0 | – | – | 2 |\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
}

const signalRules = `groups:
  - name: g
    rules:
      - alert: XAbove5
        signal: x
        stat: max
        detector: {type: threshold, op: ">", value: 5}
      - alert: YAbove5
        signal: y
        stat: p99
        detector: {type: threshold, op: ">", value: 5}
      - alert: AnyAbove5
        signal: any
        stat: max
        detector: {type: threshold, op: ">", value: 5}
`

func TestEvaluateSignals(t *testing.T) {
	set := parseSet(t, signalRules)
	c := testCorpus()
	c.Series[0].Signal = "y:p99" // the step series is y's
	c.Series[1].Signal = "x"
	res, err := Evaluate(context.Background(), set, c)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Result{}
	for _, r := range res {
		byName[r.Name] = r
	}
	if r := byName["XAbove5"]; r.Series != 1 || r.Pages != 0 || r.Onsets[0] != 0 {
		t.Errorf("x's rule judged y's series: %+v", r)
	}
	if r := byName["YAbove5"]; r.Series != 1 || r.Pages != 1 || r.TP != 1 {
		t.Errorf("y's rule: %+v", r)
	}
	if r := byName["AnyAbove5"]; r.Series != 2 || r.Pages != 1 {
		t.Errorf("any rule: %+v", r)
	}
	if r := byName[AllRules]; r.Series != 2 || r.Pages != 1 {
		t.Errorf("all rules: %+v", r)
	}
	// A stat that differs: y's rule judges nothing and has no row.
	c.Series[0].Signal = "y:rate"
	res, _ = Evaluate(context.Background(), set, c)
	var b bytes.Buffer
	if err := WriteTable(&b, c, res); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "| YAbove5 |") || !strings.Contains(b.String(), "| XAbove5 |") || !strings.Contains(b.String(), "| (all rules) | 2 rules |") ||
		!strings.Contains(b.String(), "judged no series (") || !strings.HasSuffix(b.String(), "): YAbove5\n") {
		t.Errorf("table:\n%s", b.String())
	}
	// A series of no signal (units unknown): judged by the rules that
	// learn it, not by a static threshold of a named signal.
	set = parseSet(t, signalRules+`      - alert: XAnomaly
        signal: x
        stat: max
        detector: {type: auto}
`)
	c = testCorpus()
	res, _ = Evaluate(context.Background(), set, c)
	byName = map[string]Result{}
	for _, r := range res {
		byName[r.Name] = r
	}
	if r := byName["XAbove5"]; r.Series != 0 || r.Pages != 0 {
		t.Errorf("a static threshold judged series of no signal: %+v", r)
	}
	if r := byName["XAnomaly"]; r.Series != 2 || r.Pages == 0 {
		t.Errorf("a learning detector did not judge series of no signal: %+v", r)
	}
	if r := byName["AnyAbove5"]; r.Series != 2 || r.Pages != 1 {
		t.Errorf("any rule: %+v", r)
	}

	// Signals survive Write and Load: one signal is written as "*".
	dir := t.TempDir()
	c.SetSignal("y:p99")
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, SignalsFile))
	if !strings.Contains(string(raw), `"*": "y:p99"`) {
		t.Errorf("signals.json: %s", raw)
	}
	got, err := Load(context.Background(), dir, "")
	if err != nil || got.Series[0].Signal != "y:p99" || got.Series[1].Signal != "y:p99" {
		t.Fatalf("load: %v %+v", err, got)
	}
	// Globs: the first in sorted order wins; unmatched files have none.
	os.WriteFile(filepath.Join(dir, SignalsFile), []byte(`{"a/*.csv": "y", "b*": "x"}`), 0o644)
	if got, err = Load(context.Background(), dir, ""); err != nil || got.Series[0].Signal != "y" || got.Series[1].Signal != "" {
		t.Fatalf("globs: %v %+v", err, got)
	}
	os.WriteFile(filepath.Join(dir, SignalsFile), []byte(`{"[": "y"}`), 0o644)
	if _, err = Load(context.Background(), dir, ""); err == nil || !strings.Contains(err.Error(), SignalsFile) {
		t.Errorf("bad glob: %v", err)
	}
	os.WriteFile(filepath.Join(dir, SignalsFile), []byte(`[1]`), 0o644)
	if _, err = Load(context.Background(), dir, ""); err == nil || !strings.Contains(err.Error(), SignalsFile) {
		t.Errorf("bad json: %v", err)
	}
}

func TestEvaluateCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Evaluate(ctx, parseSet(t, testRules), testCorpus()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestRunRulesForCountsFromTheLead: at 1-minute steps auto fires a
// spike at its second sample (the first announces it) with the minute
// that sample covers as Lead, and a rule's `for: 5s` counts from the
// start of that minute: a two-sample anomaly pages at its second sample,
// and a lone one of the same size never fires.
func TestRunRulesForCountsFromTheLead(t *testing.T) {
	rs := parseSet(t, `groups:
  - name: g
    rules:
      - alert: Auto
        signal: any
        stat: max
        detector: {type: auto, direction: up}
        for: 5s
`).Rules()
	const n, at = 2100, 2000
	for _, tc := range []struct {
		devs []float64 // σ from 100, from row at on
		want []int
	}{
		{[]float64{2.5, 6}, []int{at + 1}},
		{[]float64{0, 6}, nil},
	} {
		rnd := rand.New(rand.NewPCG(41, 1))
		s := Series{Times: make([]int64, n), Values: make([]float64, n)}
		for i := range n {
			s.Times[i] = time.Unix(0, 0).Add(time.Duration(i) * time.Minute).UnixNano()
			s.Values[i] = 100 + rnd.NormFloat64()
			if j := i - at; j >= 0 && j < len(tc.devs) {
				s.Values[i] = 100 + tc.devs[j]
			}
		}
		got := runRules(rs, s, make([]float64, n), nil)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v: pages at rows %v, want %v", tc.devs, got, tc.want)
		}
	}
}

// TestRunRulesEvidence: a rule with evidence pages once its evidence run
// is enough, as the analyzer and mciv replay step it, not when its
// detector first fires. The threshold is 5, so a value of 6 weighs 1.2
// and one of 30 the cap, 4; each row covers the time since the previous.
func TestRunRulesEvidence(t *testing.T) {
	set := parseSet(t, `groups:
  - name: g
    rules:
      - alert: Above5Evidence
        signal: any
        stat: max
        detector: {type: threshold, op: ">", value: 5}
        evidence: {need: 3m, min: 1m}
`)
	const n = 100
	for _, tc := range []struct {
		name string
		high map[int]float64 // rows that are not 1
		gap  int             // rows from gap on are a minute later (0: none)
		want []int
	}{
		// 1.2m, 2.4m of evidence, then two quiet rows drop it.
		{"two rows past the threshold", map[int]float64{50: 6, 51: 6}, 0, nil},
		// 3.6m at the third row, 2m after the first: it pages there; a
		// later burst needs evidence of its own.
		{"five rows past the threshold", map[int]float64{50: 6, 51: 6, 52: 6, 53: 6, 54: 6, 70: 6, 71: 6, 72: 6, 73: 6, 74: 6}, 0, []int{52, 72}},
		// A lone strong row is enough weight but has not lasted min; two
		// have.
		{"strong rows", map[int]float64{20: 30, 50: 30, 51: 30}, 0, []int{51}},
		// The second row covers 2 minutes: 1.2m + 2.4m.
		{"two rows across a gap", map[int]float64{50: 6, 51: 6}, 51, []int{51}},
		// One quiet row does not break a run.
		{"one quiet row", map[int]float64{50: 6, 51: 6, 53: 6}, 0, []int{53}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
			s := Series{Times: make([]int64, n), Values: make([]float64, n)}
			for i := range n {
				at := t0.Add(time.Duration(i) * time.Minute)
				if tc.gap > 0 && i >= tc.gap {
					at = at.Add(time.Minute)
				}
				s.Times[i] = at.UnixNano()
				s.Values[i] = 1
				if v, ok := tc.high[i]; ok {
					s.Values[i] = v
				}
			}
			got := runRules(set.Rules(), s, make([]float64, n), nil)
			if !slices.Equal(got, tc.want) {
				t.Errorf("pages at rows %v, want %v", got, tc.want)
			}
			if rp := replayOnsets(t, set, s); !slices.Equal(got, rp) {
				t.Errorf("pages at rows %v, replay.CSV at %v", got, rp)
			}
		})
	}
}

// replayOnsets is the rows where replay.CSV has an alert of set start
// firing on s.
func replayOnsets(t *testing.T, set *rules.Set, s Series) []int {
	t.Helper()
	var in bytes.Buffer
	in.WriteString("timestamp,value\n")
	row := map[int64]int{}
	for i, ns := range s.Times {
		fmt.Fprintf(&in, "%s,%g\n", time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05"), s.Values[i])
		row[ns/int64(time.Second)] = i
	}
	var out bytes.Buffer
	if _, err := replay.CSV(&in, set, "", &out); err != nil {
		t.Fatal(err)
	}
	var onsets []int
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var tr struct {
			Transition string  `json:"transition"`
			TS         float64 `json:"ts"`
		}
		if err := json.Unmarshal([]byte(line), &tr); err != nil {
			t.Fatalf("replay line %q: %v", line, err)
		}
		if tr.Transition == "firing" {
			i, ok := row[int64(tr.TS)]
			if !ok {
				t.Fatalf("replay fired at %v, no row", tr.TS)
			}
			onsets = append(onsets, i)
		}
	}
	slices.Sort(onsets)
	return slices.Compact(onsets)
}

// parseSet parses one rules file's source into a set.
func parseSet(t *testing.T, src string) *rules.Set {
	t.Helper()
	g, err := rules.Parse("r.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return &rules.Set{Groups: g}
}
