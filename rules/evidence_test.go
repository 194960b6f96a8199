package rules

import (
	"strings"
	"testing"
	"time"
)

const evidenceRule = `groups:
  - name: network
    rules:
      - alert: Fast
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
        %s
`

func parseEvidence(t *testing.T, option string) (*Rule, error) {
	t.Helper()
	src := strings.Replace(evidenceRule, "%s", option, 1)
	groups, err := Parse("e.yaml", []byte(src))
	if err != nil {
		return nil, err
	}
	return groups[0].Rules[0], nil
}

func TestParseEvidence(t *testing.T) {
	r, err := parseEvidence(t, "evidence: {need: 1s, min: 500ms, max_weight: 3}")
	if err != nil {
		t.Fatal(err)
	}
	want := Evidence{Need: time.Second, Min: 500 * time.Millisecond, MaxWeight: 3}
	if r.Evidence == nil || *r.Evidence != want || r.For != 0 {
		t.Fatalf("evidence %+v, for %s; want %+v", r.Evidence, r.For, want)
	}
	r, err = parseEvidence(t, "evidence: {need: 2s}")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Evidence{Need: 2 * time.Second, MaxWeight: DefaultEvidenceMaxWeight}); *r.Evidence != want {
		t.Fatalf("defaults: %+v, want %+v", *r.Evidence, want)
	}
	r, err = parseEvidence(t, "for: 3s")
	if err != nil || r.Evidence != nil {
		t.Fatalf("without evidence: %+v, %v", r, err)
	}
}

func TestParseEvidenceErrors(t *testing.T) {
	for _, tc := range []struct{ option, want string }{
		{"evidence: {need: 1s}\n        for: 3s", `e.yaml:9:9: group "network", rule "Fast": for and evidence are alternatives: say one (evidence at line 8)`},
		{"evidence: 1s", `e.yaml:8:19: group "network", rule "Fast": evidence must be a mapping such as {need: 1s, min: 500ms}, not a scalar`},
		{"evidence: {min: 1s}", `e.yaml:8:19: group "network", rule "Fast": evidence: missing required key "need"`},
		{"evidence: {need: 0s}", `e.yaml:8:26: group "network", rule "Fast": evidence.need must be positive`},
		{"evidence: {need: soon}", `e.yaml:8:26: group "network", rule "Fast": evidence.need: "soon" is not a duration such as 30s, 5m or 1h30m`},
		{"evidence: {need: 1s, min: 2s}", `e.yaml:8:35: group "network", rule "Fast": evidence.min 2s must not exceed evidence.need 1s`},
		{"evidence: {need: 1s, max_weight: 0.5}", `e.yaml:8:42: group "network", rule "Fast": evidence.max_weight must be at least 1, not 0.5`},
		{"evidence: {need: 1s, weight: 2}", `e.yaml:8:30: group "network", rule "Fast": unknown key "weight" in evidence (known: need, min, max_weight)`},
	} {
		_, err := parseEvidence(t, tc.option)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.option, err, tc.want)
		}
	}
}

func TestEvidenceStrength(t *testing.T) {
	e := Evidence{Need: time.Second, MaxWeight: 4}
	for _, tc := range []struct {
		v, thr, base, want float64
	}{
		{10, 5, 0, 2},    // twice the threshold
		{100, 5, 0, 4},   // capped
		{5.5, 5, 0, 1.1}, // just past
		{3, 5, 0, 1},     // firing below: at least 1
		{0.03, 0.02, 0.01, 2},
		{1, 0, 0, 1}, // no usable threshold
	} {
		if got := e.Strength(tc.v, tc.thr, tc.base); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("Strength(%g, %g, %g) = %g, want %g", tc.v, tc.thr, tc.base, got, tc.want)
		}
	}
}

// steps runs batches of covered time d through a run: 'S' strong (×4),
// 's' weak (×1), '.' quiet; it returns the index of the batch that made
// the evidence enough, or -1.
func steps(e Evidence, d time.Duration, pattern string) int {
	var r EvidenceRun
	for i, c := range pattern {
		strength := 1.0
		if c == 'S' {
			strength = 4
		}
		if r.Step(e, d, c != '.', strength) {
			return i
		}
	}
	return -1
}

func TestEvidenceRun(t *testing.T) {
	e := Evidence{Need: time.Second, Min: 500 * time.Millisecond, MaxWeight: 4}
	q := 250 * time.Millisecond
	for _, tc := range []struct {
		name    string
		d       time.Duration
		pattern string
		want    int
	}{
		{"strong fault fires once it persisted for min", q, "SSSS", 2},
		{"weak fault needs all of need", q, "ssssss", 3},
		{"one strong blip is not enough", q, "S..S..S..", -1},
		{"one quiet batch does not break a run, and counts as persisting", q, "S.SS", 2},
		{"nor does one quiet batch after another supporting one", q, "S.S.S", 2},
		{"two quiet batches do", q, "s..sss", -1},
		{"one one-second batch is not enough, two are", time.Second, "ss", 1},
		{"support in every other batch adds up within the window", q, "s.s.s.s.s.s.s.s.", 6},
		{"quiet", q, "........", -1},
	} {
		if got := steps(e, tc.d, tc.pattern); got != tc.want {
			t.Errorf("%s: %q fired at %d, want %d", tc.name, tc.pattern, got, tc.want)
		}
	}
	// A trickle of short supporting batches between 1.5s quiet ones is
	// slower than the window (4s for 1s of need): it never fires.
	var r EvidenceRun
	for i := range 40 {
		if r.Step(e, q, true, 1) {
			t.Fatalf("trickle fired at batch %d: %+v", i, r)
		}
		r.Step(e, 1500*time.Millisecond, false, 0)
	}
	// Batches longer than the window still make a run: two one-minute
	// batches for 30s of need, and two five-minute ones (each alone
	// longer than the 2-minute window: a replayed 5-minute series).
	long := Evidence{Need: 30 * time.Second, Min: 10 * time.Second}
	for _, d := range []time.Duration{time.Minute, 5 * time.Minute} {
		r.Reset()
		if r.Step(long, d, true, 1) || !r.Step(long, d, true, 1) {
			t.Fatalf("two %v batches: %+v", d, r)
		}
	}
	// A third such batch after a quiet one still restarts a run that
	// spans more than the window.
	r.Reset()
	short := Evidence{Need: 30 * time.Second, Min: 10 * time.Minute}
	for i, sup := range []bool{true, false, true} {
		if r.Step(short, 5*time.Minute, sup, 1) {
			t.Fatalf("batch %d fired: %+v", i, r)
		}
	}
	if r.Support != 5*time.Minute {
		t.Errorf("after a run slower than the window, support %v, want the last batch's 5m", r.Support)
	}
}
