package actuator

import (
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

func TestObserver(t *testing.T) {
	o := NewObserver([]SignalThreshold{{Signal: "retx", Min: 2}, {Signal: "lat", Min: 0.1}}, 10*time.Second)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	series := func(sig, peer string, v float64) wire.Series {
		return wire.Series{Signal: sig, Kind: wire.KindCounter, Value: v, Labels: []wire.Label{{Name: "peer", Value: peer}}}
	}
	hist := wire.Series{Signal: "lat", Kind: wire.KindHistogram, Labels: []wire.Label{{Name: "peer", Value: "[::ffff:10.0.0.1]:5432"}},
		Hist: &wire.Histogram{Count: 4, Sum: 2}}
	o.Observe(&wire.Batch{Cluster: "c", Host: "h2", Series: []wire.Series{series("retx", "10.0.0.1:5432", 5), series("retx", "10.0.0.9:1", 1)}}, t0)
	o.Observe(&wire.Batch{Cluster: "c", Host: "h2", Series: []wire.Series{hist}}, t0.Add(time.Second))
	o.Observe(&wire.Batch{Cluster: "c", Host: "h3", Series: []wire.Series{series("retx", "10.0.0.1:6432", 5), series("other", "10.0.0.1:5432", 99)}}, t0.Add(time.Second))

	got := o.DegradedTowards("c", "10.0.0.1:5432", true, t0)
	if d := got["h2"]; d.Batches != 2 || d.Max != 5 {
		t.Fatalf("h2: %+v", got)
	}
	if _, ok := got["h3"]; ok {
		t.Fatalf("h3 matched on another port: %+v", got)
	}
	if got := o.DegradedTowards("c", "10.0.0.1:5432", false, t0); got["h3"].Batches != 1 {
		t.Fatalf("address-only match: %+v", got)
	}
	if n := o.DegradedAny("c", "h3", "10.0.0.1:5432", true, t0); n != 1 {
		t.Fatalf("h3's own trouble: %d", n)
	}
	if seen := o.Seen("c", t0.Add(500*time.Millisecond)); len(seen) != 2 {
		t.Fatalf("seen %v", seen)
	}
	// Old evidence is forgotten.
	o.Observe(&wire.Batch{Cluster: "c", Host: "h2"}, t0.Add(time.Minute))
	if got := o.DegradedTowards("c", "10.0.0.1:5432", true, t0); got["h2"].Batches != 0 {
		t.Fatalf("stale evidence kept: %+v", got)
	}
	if s := o.Seen("nope", t0); s != nil {
		t.Fatalf("unknown cluster seen %v", s)
	}
	if joinHostPort("::1", 5432) != "[::1]:5432" || joinHostPort("", 1) != "" || joinHostPort("db", 5) != "db:5" {
		t.Fatal("joinHostPort")
	}
}
