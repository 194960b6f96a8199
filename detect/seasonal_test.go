package detect

import (
	"math"
	"testing"
	"time"
)

// daily is n minutes of a daily sine (peak 100+amp at 15:00 UTC) plus
// N(0,1) noise.
func daily(n int, amp float64) []float64 {
	vs := noise(31, n, 100, 1)
	for i := range vs {
		vs[i] += amp * math.Sin(2*math.Pi*(float64(i)/1440-0.375))
	}
	return vs
}

func TestSeasonalDailyPeak(t *testing.T) {
	const days = 14
	vs := daily(days*1440, 20)
	night := 12*1440 + 3*60 // 03:00 on day 12: the trough
	vs[night] = 120         // a peak-hour value at night
	seasonal := mustSpec(t, Config{Type: "seasonal", Threshold: 5})
	plain := mustSpec(t, Config{Type: "zscore", Baseline: 3 * time.Hour, Threshold: 5})
	rs := feed(seasonal.New(), vs, time.Minute)
	for i := 2 * 1440; i < len(rs); i++ {
		if rs[i].Firing && i != night {
			t.Fatalf("seasonal fired at minute %d of the day %d: %+v", i%1440, i/1440, rs[i])
		}
	}
	if !rs[night].Firing || math.Abs(rs[night].Baseline-80) > 3 {
		t.Fatalf("seasonal missed a peak-level value at night: %+v", rs[night])
	}
	// A long-baseline z-score sees the daily peak as anomalous and the
	// night-time peak-level value as normal.
	zs := feed(plain.New(), vs, time.Minute)
	if zs[night].Firing {
		t.Logf("zscore fired on the night value too: %+v", zs[night])
	}
}

func TestSeasonalSlots(t *testing.T) {
	d := newSeasonal(mustSpec(t, Config{Type: "seasonal", Slot: time.Hour, Period: 7 * 24 * time.Hour}).(*StatSpec).Config())
	if len(d.slots) != 168 {
		t.Fatalf("%d slots", len(d.slots))
	}
	if d.slot(t0) == d.slot(t0.Add(24*time.Hour)) || d.slot(t0) != d.slot(t0.Add(7*24*time.Hour)) {
		t.Fatal("weekly slots do not repeat weekly")
	}
	if d.slot(time.Unix(-1, 0)) != 167 {
		t.Fatalf("slot before the epoch: %d", d.slot(time.Unix(-1, 0)))
	}
	if got := d.Size(); got != 304+24*168 {
		t.Fatalf("weekly seasonal state: %d bytes", got)
	}
}

func TestSeasonalFallsBackBeforeAPeriod(t *testing.T) {
	// Six hours at 1 s steps with the 24h default: no slot has seen a
	// period, yet a lasting +10σ shift at 3h fires, against the fallback.
	vs := noise(47, 6*3600, 100, 1)
	for i := 3 * 3600; i < len(vs); i++ {
		vs[i] += 10
	}
	rs := feed(mustSpec(t, Config{Type: "seasonal"}).New(), vs, time.Second)
	if f := firstFiring(rs, 0); f < 3*3600 || f > 3*3600+5 {
		t.Fatalf("first firing at %d, want just after %d", f, 3*3600)
	}
}
