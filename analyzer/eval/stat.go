package eval

import (
	"fmt"
	"time"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// agg accumulates the series of one label set of one rule in one batch.
// It lives in its group and is reused from batch to batch.
type agg struct {
	kinds  [wire.KindHistogram + 1]bool
	nkinds int
	sum    float64 // counter increases or gauge values
	n      int     // gauge series
	max    float64 // largest gauge value
	hCount uint64  // histogram observations
	hSum   float64 // histogram sum of observations
	// hist is the histograms of the label set merged, when the rule needs
	// buckets (quantiles, max). With one series it is that series'
	// histogram, not a copy; merges go into bufs, alternately.
	hist *wire.Histogram
	bufs [2]wire.Histogram
	cur  int
	// top is the series that contributed most (largest counter increase
	// or gauge, histogram with the highest bucket): correlation
	// annotations name its peer or device.
	top      *wire.Series
	topScore float64
}

// reset empties a for a new batch, keeping its merge buffers.
func (a *agg) reset() {
	bufs := a.bufs
	*a = agg{bufs: bufs}
}

// release drops a's references to the batch's series.
func (a *agg) release() { a.hist, a.top = nil, nil }

func (a *agg) add(s *wire.Series, buckets bool) {
	score := s.Value
	if s.Kind == wire.KindHistogram && s.Hist != nil && len(s.Hist.Buckets) > 0 {
		score = float64(s.Hist.Buckets[len(s.Hist.Buckets)-1].Index)
	}
	if a.top == nil || score > a.topScore {
		a.top, a.topScore = s, score
	}
	if int(s.Kind) < len(a.kinds) && !a.kinds[s.Kind] {
		a.kinds[s.Kind] = true
		a.nkinds++
	}
	switch s.Kind {
	case wire.KindCounter:
		a.sum += s.Value
	case wire.KindGauge:
		if a.n == 0 || s.Value > a.max {
			a.max = s.Value
		}
		a.sum += s.Value
		a.n++
	case wire.KindHistogram:
		if s.Hist == nil {
			return
		}
		a.hCount += s.Hist.Count
		a.hSum += s.Hist.Sum
		if !buckets {
			return
		}
		if a.hist == nil {
			a.hist = s.Hist
			return
		}
		dst := &a.bufs[a.cur] // never a.hist: merges alternate between the two
		a.cur ^= 1
		dst.Buckets = mergeBuckets(dst.Buckets[:0], a.hist.Buckets, s.Hist.Buckets)
		dst.Count, dst.Sum = a.hist.Count+s.Hist.Count, a.hist.Sum+s.Hist.Sum
		a.hist = dst
	}
}

func (a *agg) kind() wire.Kind {
	for k := range a.kinds {
		if a.kinds[k] {
			return wire.Kind(k)
		}
	}
	return 0
}

// needsBuckets reports whether stat st of a histogram needs the merged
// buckets rather than count and sum.
func needsBuckets(st rules.Stat) bool {
	_, q := st.Quantile()
	return q || st == rules.StatMax
}

// value computes stat st over an interval. ok is false when the stat has
// no value for this interval (the mean of no observations); err says why
// the stat cannot be computed from this signal at all.
func (a *agg) value(signal string, st rules.Stat, interval time.Duration) (v float64, ok bool, err error) {
	if a.nkinds > 1 {
		return 0, false, fmt.Errorf("signal %s mixes series of different kinds in one label set", signal)
	}
	secs := interval.Seconds()
	k := a.kind()
	if q, isQ := st.Quantile(); isQ && k == wire.KindHistogram {
		if a.hCount == 0 || a.hist == nil || len(a.hist.Buckets) == 0 {
			return 0, false, nil
		}
		return histo.Quantile(a.hist, q), true, nil
	}
	switch {
	case k == wire.KindCounter && st == rules.StatRate:
		return a.sum / secs, true, nil
	case k == wire.KindCounter && st == rules.StatCount:
		return a.sum, true, nil
	case k == wire.KindHistogram && st == rules.StatRate:
		return float64(a.hCount) / secs, true, nil
	case k == wire.KindHistogram && st == rules.StatCount:
		return float64(a.hCount), true, nil
	case k == wire.KindHistogram && st == rules.StatMean:
		if a.hCount == 0 {
			return 0, false, nil
		}
		return a.hSum / float64(a.hCount), true, nil
	case k == wire.KindHistogram && st == rules.StatMax:
		if a.hist == nil || len(a.hist.Buckets) == 0 {
			return 0, false, nil
		}
		return histo.Value(a.hist.Buckets[len(a.hist.Buckets)-1].Index), true, nil
	case k == wire.KindGauge && st == rules.StatMean:
		return a.sum / float64(a.n), true, nil
	case k == wire.KindGauge && st == rules.StatMax:
		return a.max, true, nil
	}
	return 0, false, fmt.Errorf("stat %s does not apply to %s, a %s", st, signal, k)
}

// mergeBuckets appends to dst the buckets of x and y (each sorted by
// index) merged, adding the counts of equal indexes.
func mergeBuckets(dst, x, y []wire.Bucket) []wire.Bucket {
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i].Index < y[j].Index:
			dst = append(dst, x[i])
			i++
		case y[j].Index < x[i].Index:
			dst = append(dst, y[j])
			j++
		default:
			dst = append(dst, wire.Bucket{Index: x[i].Index, Count: x[i].Count + y[j].Count})
			i++
			j++
		}
	}
	dst = append(dst, x[i:]...)
	return append(dst, y[j:]...)
}
