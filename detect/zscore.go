package detect

import (
	"time"
	"unsafe"
)

// ZScore fires when a value is more than threshold standard deviations
// from the EW mean of the values before it. The mean and variance are
// exponentially weighted with time constant baseline (see the package
// documentation). Its state is a fixed 96 bytes.
type ZScore struct {
	j     judge
	tau   int64
	stats ew
}

func newZScore(c Config) *ZScore { return &ZScore{j: newJudge(c), tau: int64(c.Baseline)} }

// Observe implements Detector.
func (d *ZScore) Observe(t time.Time, v float64) Result {
	dt, ok := d.j.admit(t, v)
	if !ok {
		return d.j.skip()
	}
	if d.stats.n == 0 {
		d.stats.add(v, 1)
		return d.j.decide(false, 0, 0, v, v, v)
	}
	m, s := d.stats.mean, d.stats.scale()
	warm := d.j.warm(MinSamples)
	r := d.j.decide(warm, (v-m)/s, v-m, m, m+d.j.thr*s, m-d.j.thr*s)
	x := v
	if warm {
		x = clampTo(v, m, d.j.thr, s)
	}
	d.stats.add(x, alpha(dt, d.j.tau(d.tau), d.stats.n))
	return r
}

// Size implements Sizer.
func (d *ZScore) Size() int { return int(unsafe.Sizeof(*d)) }

// Ignored implements Ignorer.
func (d *ZScore) Ignored() uint64 { return d.j.ignored }
