package quality

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PerMetric turns ds into a dataset of single-metric series, one per
// machine and metric, each labelled only with the anomalies that involve
// that metric: a labelled segment of the machine counts for metric d when
// an interpretation line (`start-end:d1,d2,...`, dimensions 1-based) that
// overlaps it lists d. Overlap, rather than exact bounds, absorbs the
// datasets' different end conventions (SMD's ends are exclusive, ASD's
// inclusive). This is how a rule on one signal is judged: it should find
// the anomalies of its own signal and stay quiet otherwise.
func PerMetric(ds *Dataset, interpretationDir string) (*Dataset, error) {
	out := &Dataset{Name: ds.Name + "/metric", Step: ds.Step}
	for _, m := range ds.Machines {
		spans, err := readInterpretation(filepath.Join(interpretationDir, m.Name+".txt"))
		if err != nil {
			return nil, err
		}
		segs := segments(m.Labels)
		for d := range m.Test {
			lab := make([]bool, len(m.Labels))
			for _, s := range segs {
				for _, sp := range spans {
					if sp.start <= s[1] && sp.end >= s[0] && sp.dims[d+1] {
						for i := s[0]; i <= s[1]; i++ {
							lab[i] = true
						}
						break
					}
				}
			}
			out.Machines = append(out.Machines, Machine{
				Name:   fmt.Sprintf("%s/m%d", m.Name, d),
				Train:  [][]float64{m.Train[d]},
				Test:   [][]float64{m.Test[d]},
				Labels: lab,
			})
		}
	}
	return out, nil
}

// span is one interpretation line.
type span struct {
	start, end int
	dims       map[int]bool
}

// readInterpretation reads an interpretation_label file.
func readInterpretation(path string) ([]span, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading interpretation labels: %w", err)
	}
	defer f.Close()
	var out []span
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		rng, dims, ok := strings.Cut(text, ":")
		a, b, ok2 := strings.Cut(rng, "-")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%s:%d: want start-end:d1,d2,...", path, line)
		}
		sp := span{dims: map[int]bool{}}
		if sp.start, err = strconv.Atoi(a); err == nil {
			sp.end, err = strconv.Atoi(b)
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		for _, d := range strings.Split(dims, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(d))
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			sp.dims[n] = true
		}
		out = append(out, sp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
