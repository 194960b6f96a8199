package eval

import (
	"fmt"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// agg accumulates the series of one label set of one rule in one batch.
type agg struct {
	byValues []string // values of the rule's by labels, in by order
	kinds    [wire.KindHistogram + 1]bool
	nkinds   int
	sum      float64 // counter increases or gauge values
	n        int     // gauge series
	max      float64 // largest gauge value
	hCount   uint64  // histogram observations
	hSum     float64 // histogram sum of observations
}

func (a *agg) add(s *wire.Series) {
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
		if s.Hist != nil {
			a.hCount += s.Hist.Count
			a.hSum += s.Hist.Sum
		}
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

// value computes stat st over an interval. ok is false when the stat has
// no value for this interval (the mean of no observations); err says why
// the stat cannot be computed from this signal at all.
func (a *agg) value(signal string, st rules.Stat, interval time.Duration) (v float64, ok bool, err error) {
	if a.nkinds > 1 {
		return 0, false, fmt.Errorf("signal %s mixes series of different kinds in one label set", signal)
	}
	secs := interval.Seconds()
	k := a.kind()
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
	case k == wire.KindGauge && st == rules.StatMean:
		return a.sum / float64(a.n), true, nil
	case k == wire.KindGauge && st == rules.StatMax:
		return a.max, true, nil
	case k == wire.KindHistogram && st == rules.StatMax:
		return 0, false, fmt.Errorf("stat max of histogram %s needs the bucket layout: not supported yet", signal)
	}
	return 0, false, fmt.Errorf("stat %s does not apply to %s, a %s", st, signal, k)
}
