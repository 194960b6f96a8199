package synth

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestGenerateDeterministic(t *testing.T) {
	a := Generate(7, time.Minute, 500)
	b := Generate(7, time.Minute, 500)
	if !slices.Equal(a.Values, b.Values) || !slices.Equal(a.Anomalies, b.Anomalies) {
		t.Fatal("same seed, different series")
	}
	c := Generate(8, time.Minute, 500)
	if slices.Equal(a.Values, c.Values) {
		t.Fatal("different seeds, same series")
	}
	if a.Name != "1m/seed-0007" || !a.Time(2).Equal(a.Start.Add(2*time.Minute)) {
		t.Errorf("name %q or times wrong", a.Name)
	}
}

func TestGenerateAnomalies(t *testing.T) {
	seen := map[Kind]bool{}
	none := 0
	for seed := range uint64(80) {
		for _, step := range []time.Duration{time.Second, time.Minute, 5 * time.Minute} {
			s := Generate(seed, step, 0)
			if len(s.Values) != Rows {
				t.Fatalf("%d rows", len(s.Values))
			}
			for _, v := range s.Values {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s: non-finite value", s.Name)
				}
			}
			if len(s.Anomalies) == 0 {
				none++
			}
			prev := -1
			for _, a := range s.Anomalies {
				seen[a.Kind] = true
				if a.From < Rows/5 || a.To < a.From || a.To >= Rows || a.From <= prev {
					t.Fatalf("%s: anomaly %+v out of place", s.Name, a)
				}
				prev = a.To
				if a.Kind == Dropout && s.Values[a.From] != 0 {
					t.Errorf("%s: dropout at %d is %g", s.Name, a.From, s.Values[a.From])
				}
				if a.Kind == FlatLine && s.Values[a.From+1] != s.Values[a.From] {
					t.Errorf("%s: flat line moves", s.Name)
				}
			}
		}
	}
	for _, k := range Kinds() {
		if !seen[k] {
			t.Errorf("kind %s never generated", k)
		}
	}
	if none == 0 || none > 80 {
		t.Errorf("%d of 240 series without anomalies", none)
	}
}
