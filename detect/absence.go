package detect

import (
	"math"
	"time"
	"unsafe"
)

// Absence fires when a series that has sent at least one finite value has
// sent none for `for`. It judges time, not values: Observe records a
// sample (and clears), and the engine calls Tick (see Ticker) to ask
// whether the silence has grown too long. Non-finite values do not count
// as samples. Score is gap/(gap+for): 0.5 when the silence reaches `for`;
// Threshold is `for` in seconds. Its state is a fixed 32 bytes.
type Absence struct {
	forNs   int64
	last    int64
	seen    bool
	ignored uint64
}

func newAbsence(c Config) *Absence { return &Absence{forNs: int64(c.For)} }

// Observe implements Detector: a finite value ends any silence.
func (d *Absence) Observe(t time.Time, v float64) Result {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.ignored++
		return d.Tick(t)
	}
	if ns := t.UnixNano(); !d.seen || ns > d.last {
		d.last = ns
	}
	d.seen = true
	return Result{Threshold: time.Duration(d.forNs).Seconds()}
}

// Tick implements Ticker.
func (d *Absence) Tick(t time.Time) Result {
	r := Result{Threshold: time.Duration(d.forNs).Seconds()}
	if !d.seen {
		return r
	}
	gap := t.UnixNano() - d.last
	if gap <= 0 {
		return r
	}
	r.Score = score(float64(gap), float64(d.forNs))
	r.Firing = gap >= d.forNs
	return r
}

// Size implements Sizer.
func (d *Absence) Size() int { return int(unsafe.Sizeof(*d)) }

// Ignored implements Ignorer.
func (d *Absence) Ignored() uint64 { return d.ignored }

// score maps a distance z > 0 past nothing to z/(z+thr): 0.5 at the
// threshold (absence's score: the silence against its limit).
func score(z, thr float64) float64 {
	if math.IsInf(z, 1) {
		return 1
	}
	return z / (z + thr)
}
