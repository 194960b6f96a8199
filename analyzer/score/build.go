package score

import (
	"math"
	"time"
)

// FromLabels makes a series of values at a regular step from t0 whose
// anomalies are the runs of true labels, with NAB's windows: each anomaly
// gets a window of int(0.10·n/k) rows (n rows, k anomalies) centred on its
// first row and stretched to cover the anomaly's last row; windows that
// start inside the probation are dropped and overlapping ones merged.
func FromLabels(name string, t0 time.Time, step time.Duration, values []float64, labels []bool) Series {
	s := Series{Name: name, Values: values, Times: make([]int64, len(values))}
	for i := range values {
		s.Times[i] = t0.Add(time.Duration(i) * step).UnixNano()
	}
	segs := runs(labels)
	if len(segs) == 0 {
		return s
	}
	n := len(values)
	width := int(0.10 * float64(n) / float64(len(segs)))
	prob := Probation(n)
	for _, sg := range segs {
		w := Window{max(sg.From-width/2, 0), min(max(sg.From+width/2, sg.To), n-1)}
		if w.From < prob {
			continue
		}
		if k := len(s.Windows) - 1; k >= 0 && w.From <= s.Windows[k].To+1 {
			s.Windows[k].To = max(s.Windows[k].To, w.To)
			continue
		}
		s.Windows = append(s.Windows, w)
	}
	return s
}

// runs returns the runs of true labels.
func runs(labels []bool) []Window {
	var out []Window
	for i := 0; i < len(labels); i++ {
		if !labels[i] {
			continue
		}
		j := i
		for j+1 < len(labels) && labels[j+1] {
			j++
		}
		out = append(out, Window{i, j})
		i = j
	}
	return out
}

// Resample turns values sampled every from into values every to: the mean
// of each bucket of to/from rows when to is coarser (NaNs left out; a
// bucket is labelled when any of its rows is), linear interpolation when
// it is finer (each new row labelled as the row it starts from). to and
// from must divide one another.
func Resample(values []float64, labels []bool, from, to time.Duration) ([]float64, []bool) {
	switch {
	case to == from:
		return values, labels
	case to > from:
		k := int(to / from)
		nv := make([]float64, 0, len(values)/k+1)
		nl := make([]bool, 0, len(values)/k+1)
		for i := 0; i < len(values); i += k {
			sum, cnt, lab := 0.0, 0, false
			for j := i; j < min(i+k, len(values)); j++ {
				if v := values[j]; !math.IsNaN(v) {
					sum += v
					cnt++
				}
				lab = lab || labels[j]
			}
			v := math.NaN()
			if cnt > 0 {
				v = sum / float64(cnt)
			}
			nv, nl = append(nv, v), append(nl, lab)
		}
		return nv, nl
	}
	k := int(from / to)
	nv := make([]float64, 0, len(values)*k)
	nl := make([]bool, 0, len(values)*k)
	for i, v := range values {
		next := v
		if i+1 < len(values) {
			next = values[i+1]
		}
		for j := range k {
			f := float64(j) / float64(k)
			nv = append(nv, v+(next-v)*f)
			nl = append(nl, labels[i])
		}
	}
	return nv, nl
}
