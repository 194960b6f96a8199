// Package synth generates labelled synthetic metric series for judging
// detectors: a level with noise (Gaussian, heavy-tailed or counts), an
// optional seasonal cycle and a slow wander, and anomalies of known kind
// and position: spikes, level shifts, drifts, variance changes,
// seasonality changes, flat lines and dropouts. A seed fixes a series, so
// detectors can be tuned on some seeds and reported on others.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Kind is a kind of anomaly.
type Kind string

// The kinds of anomaly Generate plants.
const (
	Spike       Kind = "spike"
	LevelShift  Kind = "level_shift"
	Drift       Kind = "drift"
	Variance    Kind = "variance"
	Seasonality Kind = "seasonality"
	FlatLine    Kind = "flat_line"
	Dropout     Kind = "dropout"
)

// Kinds lists every kind.
func Kinds() []Kind {
	return []Kind{Spike, LevelShift, Drift, Variance, Seasonality, FlatLine, Dropout}
}

// Anomaly is one planted anomaly: rows From..To (inclusive).
type Anomaly struct {
	Kind     Kind
	From, To int
}

// Series is one generated series.
type Series struct {
	// Name says the step and seed ("1m/seed-0042").
	Name  string
	Start time.Time
	Step  time.Duration
	// Values has one value per step.
	Values    []float64
	Anomalies []Anomaly
}

// Time is the time of row i.
func (s *Series) Time(i int) time.Time { return s.Start.Add(time.Duration(i) * s.Step) }

// Rows is the default length of a series.
const Rows = 4000

// Generate makes the series of seed at the given step with n rows (Rows
// when n <= 0). The series has 0 to 3 anomalies, placed after the first
// fifth of the series (a detector's learning time) and apart from each
// other; about one series in eight has none.
func Generate(seed uint64, step time.Duration, n int) Series {
	if n <= 0 {
		n = Rows
	}
	r := rand.New(rand.NewPCG(seed, uint64(step)))
	s := Series{
		Name:   fmt.Sprintf("%s/seed-%04d", stepName(step), seed),
		Start:  time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC),
		Step:   step,
		Values: make([]float64, n),
	}
	// The normal behaviour.
	level := math.Pow(10, -3+7*r.Float64())
	sd := level * (0.01 + 0.25*r.Float64())
	noise := r.IntN(3) // 0 Gaussian, 1 heavy-tailed, 2 counts
	if noise == 2 {
		level = math.Round(2 + 200*r.Float64())
		sd = math.Sqrt(level)
	}
	period := 24 * time.Hour
	if step < time.Minute {
		period = time.Duration(10+r.IntN(50)) * time.Minute // load cycles of a busy service
	}
	periodRows := float64(period / step)
	amp := 0.0
	if r.Float64() < 0.6 && periodRows >= 8 {
		amp = sd * (1 + 5*r.Float64())
	}
	wander := 0.0
	ar := 0.0
	if r.Float64() < 0.5 {
		wander = sd * 0.3 * r.Float64()
	}
	// The anomalies.
	k := r.IntN(4)
	if r.Float64() < 0.125 {
		k = 0
	} else if k == 0 {
		k = 1
	}
	lo := n / 5
	gap := (n - lo) / max(k, 1)
	type plan struct {
		a    Anomaly
		size float64
	}
	var plans []plan
	for i := range k {
		from := lo + i*gap + r.IntN(max(gap/3, 1))
		kind := Kinds()[r.IntN(len(Kinds()))]
		if kind == Seasonality && amp == 0 {
			kind = LevelShift
		}
		dur := max(gap/4+r.IntN(max(gap/2, 1)), 8)
		switch kind {
		case Spike:
			dur = 1 + r.IntN(3)
		case LevelShift:
			dur = n - from // a lasting change, learned as the new normal
			if i+1 < k {
				dur = gap
			}
		}
		to := min(from+dur-1, n-1)
		if i+1 < k {
			to = min(to, lo+(i+1)*gap-1) // ends before the next one starts
		}
		size := 3 + 5*r.Float64()
		if kind == Spike {
			size = 6 + 14*r.Float64()
		}
		if r.IntN(2) == 0 && kind != Variance && kind != FlatLine && kind != Dropout {
			size = -size
		}
		plans = append(plans, plan{Anomaly{kind, from, to}, size})
		s.Anomalies = append(s.Anomalies, Anomaly{kind, from, to})
	}
	for i := range n {
		base := level
		if amp > 0 {
			base += amp * math.Sin(2*math.Pi*float64(i)/periodRows)
		}
		ar = 0.98*ar + wander*r.NormFloat64()
		base += ar
		e := r.NormFloat64()
		switch noise {
		case 1:
			e = r.NormFloat64() / math.Sqrt(max(r.ExpFloat64(), 0.05)) / 2 // scale mixture: heavy tails
		}
		nsd := sd
		v := 0.0
		flat, drop := false, false
		for _, p := range plans {
			if i < p.a.From || i > p.a.To {
				if p.a.Kind == LevelShift && i > p.a.To {
					continue
				}
				if p.a.Kind == Drift && i > p.a.To {
					base += p.size * sd // the drift's end level stays
				}
				continue
			}
			switch p.a.Kind {
			case Spike:
				base += p.size * sd
			case LevelShift:
				base += p.size * sd
			case Drift:
				base += p.size * sd * float64(i-p.a.From+1) / float64(p.a.To-p.a.From+1)
			case Variance:
				nsd *= 2 + p.size/2
			case Seasonality:
				if amp > 0 {
					base -= amp * math.Sin(2*math.Pi*float64(i)/periodRows) * (1 + math.Copysign(1, p.size))
				}
			case FlatLine:
				flat = true
			case Dropout:
				drop = true
			}
		}
		if noise == 2 {
			v = poisson(r, max(base, 0))
			if nsd > sd {
				v = max(0, math.Round(v+(nsd-sd)*e))
			}
		} else {
			v = base + nsd*e
		}
		switch {
		case drop:
			v = 0
		case flat && i > 0:
			v = s.Values[i-1]
		}
		s.Values[i] = v
	}
	return s
}

// poisson draws a Poisson count with mean mu (normal approximation above
// 50).
func poisson(r *rand.Rand, mu float64) float64 {
	if mu > 50 {
		return math.Max(0, math.Round(mu+math.Sqrt(mu)*r.NormFloat64()))
	}
	l, k, p := math.Exp(-mu), 0.0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// stepName writes a step as 1s, 1m, 5m, 1h.
func stepName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
