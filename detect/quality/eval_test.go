package quality

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/detect"
)

// synthetic is a small dataset: two machines, three metrics of noise, one
// with a level shift in a labelled segment of the test half.
func synthetic() *Dataset {
	rng := rand.New(rand.NewPCG(1, 2))
	ds := &Dataset{Name: "synthetic", Step: time.Minute}
	for m := range 2 {
		mc := Machine{Name: "m" + string(rune('0'+m)), Labels: make([]bool, 600)}
		for c := range 3 {
			train, test := make([]float64, 600), make([]float64, 600)
			for i := range train {
				train[i] = 0.5 + 0.01*rng.NormFloat64()
				test[i] = 0.5 + 0.01*rng.NormFloat64()
				if c == m && i >= 300 && i < 330 {
					test[i] += 0.2
				}
			}
			mc.Train, mc.Test = append(mc.Train, train), append(mc.Test, test)
		}
		for i := 300; i < 330; i++ {
			mc.Labels[i] = true
		}
		ds.Machines = append(ds.Machines, mc)
	}
	return ds
}

func TestEvaluateSynthetic(t *testing.T) {
	spec, err := detect.NewSpec(detect.Config{Type: "zscore", Threshold: 6})
	if err != nil {
		t.Fatal(err)
	}
	rep := Evaluate(spec, synthetic(), Whole())
	if rep.BestPA.F1() < 0.99 || rep.DefaultPA.Recall() != 1 || rep.NABBest < 90 || rep.Windows != 2 {
		t.Fatalf("report %+v", rep)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, []Report{rep}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| synthetic | zscore") {
		t.Fatalf("table:\n%s", b.String())
	}
	half := Evaluate(spec, synthetic(), Split{0.6, 1})
	if half.Windows != 0 {
		t.Fatalf("last 40 %% hold %d windows, want 0", half.Windows)
	}
}

func TestRunCombinesMetrics(t *testing.T) {
	spec, _ := detect.NewSpec(detect.Config{Type: "zscore", Threshold: 6})
	ds := synthetic()
	scores, firing := Run(spec, &ds.Machines[1], ds.Step)
	if !firing[300] || scores[300] < 0.5 || firing[100] {
		t.Fatalf("row 300: %v %v; row 100: %v", firing[300], scores[300], firing[100])
	}
}
