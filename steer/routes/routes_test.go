package routes

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func members() []Member {
	return []Member{
		{Cluster: "c1", Name: "pg0", Addr: ap("10.0.0.10:5432"), Primary: true, Healthy: true, Latency: 3 * time.Millisecond},
		{Cluster: "c1", Name: "pg1", Addr: ap("10.0.0.11:5432"), Healthy: true, Latency: 2 * time.Millisecond},
		{Cluster: "c2", Name: "pg0", Addr: ap("10.0.1.10:5432"), Primary: true, Healthy: true, Latency: 1 * time.Millisecond},
	}
}

func TestReadWriteFollowsPrimary(t *testing.T) {
	d := NewDecider(DefaultPolicy())
	svc := Service{Name: "pay-rw", Role: ReadWrite, Clusters: []string{"c1"}}
	now := time.Unix(1000, 0)
	r := d.Decide(now, svc, members(), nil)
	if r.Member != "pg0" || r.Cluster != "c1" || r.Addr != "10.0.0.10:5432" {
		t.Fatalf("%+v", r)
	}
	ms := members()
	ms[0].Primary, ms[1].Primary = false, true
	r2 := d.Decide(now.Add(time.Second), svc, ms, &r)
	if r2.Member != "pg1" || r2.Same(r) || !strings.Contains(r2.Reason, "primary") {
		t.Fatalf("%+v", r2)
	}
	// No primary known: keep the last route.
	ms[1].Primary = false
	if r3 := d.Decide(now.Add(2*time.Second), svc, ms, &r2); !r3.Same(r2) {
		t.Fatalf("%+v", r3)
	}
	if r4 := d.Decide(now, svc, ms, nil); r4.Member != "" {
		t.Fatalf("%+v", r4)
	}
}

func TestReadOnlyFastestWithHysteresis(t *testing.T) {
	p := Policy{Margin: 0.5, Hold: 5 * time.Second, ErrorPenalty: time.Second}
	d := NewDecider(p)
	svc := Service{Name: "pay-ro", Role: ReadOnly, Clusters: []string{"c1", "c2"}}
	now := time.Unix(1000, 0)
	r := d.Decide(now, svc, members(), nil)
	if r.Cluster != "c2" || r.Member != "pg0" {
		t.Fatalf("fastest across clusters: %+v", r)
	}
	// Loss on c2/pg0: connect errors make it slow; the move waits for Hold.
	ms := members()
	ms[2].ErrorRate = 0.3
	now = now.Add(time.Second)
	if r2 := d.Decide(now, svc, ms, &r); !r2.Same(r) {
		t.Fatalf("moved before Hold: %+v", r2)
	}
	now = now.Add(6 * time.Second)
	r3 := d.Decide(now, svc, ms, &r)
	if r3.Member != "pg1" || r3.Cluster != "c1" {
		t.Fatalf("after Hold: %+v", r3)
	}
	// Loss removed: c2/pg0 is faster again, but not by the margin: stays.
	ms[2].ErrorRate = 0
	ms[2].Latency = 1500 * time.Microsecond
	for i := 0; i < 20; i++ {
		now = now.Add(time.Second)
		if r4 := d.Decide(now, svc, ms, &r3); !r4.Same(r3) {
			t.Fatalf("flapped back: %+v", r4)
		}
	}
	// Better by the margin for long enough: it moves.
	ms[2].Latency = 500 * time.Microsecond
	var r5 Route
	for i := 0; i < 7; i++ {
		now = now.Add(time.Second)
		if r5 = d.Decide(now, svc, ms, &r3); !r5.Same(r3) {
			break
		}
	}
	if r5.Cluster != "c2" {
		t.Fatalf("never moved back: %+v", r5)
	}
	// A better member that flickers restarts the hold.
	d2 := NewDecider(p)
	cur := Route{V: Version, Service: "pay-ro", Role: ReadOnly, Cluster: "c1", Member: "pg0", Addr: "10.0.0.10:5432"}
	ms = members()
	ms[0].Latency = 10 * time.Millisecond
	d2.Decide(now, svc, ms, &cur)
	ms[2].Latency = 20 * time.Millisecond
	ms[1].Latency = 20 * time.Millisecond
	d2.Decide(now.Add(3*time.Second), svc, ms, &cur)
	ms[2].Latency = time.Millisecond
	if r := d2.Decide(now.Add(6*time.Second), svc, ms, &cur); !r.Same(cur) {
		t.Fatalf("hold did not restart: %+v", r)
	}
}

func TestReadOnlyNeverFiringOrUnhealthy(t *testing.T) {
	d := NewDecider(DefaultPolicy())
	svc := Service{Name: "pay-ro", Role: ReadOnly, Clusters: []string{"c1", "c2"}}
	now := time.Unix(1000, 0)
	cur := d.Decide(now, svc, members(), nil) // c2/pg0
	ms := members()
	ms[2].Firing = true
	r := d.Decide(now.Add(time.Second), svc, ms, &cur)
	if r.Cluster != "c1" || r.Member != "pg1" || !strings.Contains(r.Reason, "no longer eligible") {
		t.Fatalf("firing member kept: %+v", r)
	}
	ms[0].Healthy, ms[1].Healthy = false, false
	r2 := d.Decide(now.Add(2*time.Second), svc, ms, &r)
	if r2.Member != "" {
		t.Fatalf("no eligible member: %+v", r2)
	}
}

func TestCheck(t *testing.T) {
	svc := Service{Name: "pay-rw", Role: ReadWrite, Clusters: []string{"c1"}}
	allowed := map[string]map[string]netip.AddrPort{
		"c1": {"pg0": ap("10.0.0.10:5432")},
		"c2": {"pg0": ap("10.0.1.10:5432")},
	}
	good := Route{V: Version, Service: "pay-rw", Role: ReadWrite, Cluster: "c1", Member: "pg0", Addr: "10.0.0.10:5432"}
	if err := Check(good, svc, allowed); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Route){
		"wrong role":      func(r *Route) { r.Role = ReadOnly },
		"unknown backend": func(r *Route) { r.Member = "evil" },
		"other address":   func(r *Route) { r.Addr = "10.9.9.9:5432" },
		"other cluster":   func(r *Route) { r.Cluster, r.Addr = "c2", "10.0.1.10:5432" },
		"other service":   func(r *Route) { r.Service = "x" },
		"bad version":     func(r *Route) { r.V = 9 },
		"unparsable addr": func(r *Route) { r.Addr = "nope" },
	} {
		r := good
		mut(&r)
		if err := Check(r, svc, allowed); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := Check(Route{V: Version, Service: "pay-rw", Role: ReadWrite}, svc, allowed); err != nil {
		t.Errorf("empty route: %v", err)
	}
}

func TestScoreUsesCollectorSignals(t *testing.T) {
	d := NewDecider(DefaultPolicy())
	svc := Service{Name: "pay-ro", Role: ReadOnly, Clusters: []string{"c1"}}
	ms := members()[:2] // pg0 3 ms, pg1 2 ms
	ms[1].QueryLatency = 5 * time.Millisecond
	if r := d.Decide(time.Unix(0, 0), svc, ms, nil); r.Member != "pg0" {
		t.Fatalf("query latency ignored: %+v", r)
	}
	ms[1].QueryLatency = 0
	ms[1].RTT = 10 * time.Millisecond
	if r := d.Decide(time.Unix(0, 0), svc, ms, nil); r.Member != "pg0" {
		t.Fatalf("RTT ignored: %+v", r)
	}
}

func TestReadOnlySpread(t *testing.T) {
	p := Policy{Margin: 0.5, Hold: 5 * time.Second, ErrorPenalty: time.Second, Spread: 4, Slack: 500 * time.Microsecond}
	d := NewDecider(p)
	svc := Service{Name: "pay-ro", Role: ReadOnly, Clusters: []string{"c1", "c2"}}
	ms := members() // c1/pg0 3 ms, c1/pg1 2 ms, c2/pg0 1 ms
	ms[0].Latency = 1200 * time.Microsecond
	ms[1].Latency = 1100 * time.Microsecond
	ms[2].Latency = 20 * time.Millisecond // another site: never within the margin
	now := time.Unix(1000, 0)
	r := d.Decide(now, svc, ms, nil)
	if len(r.Spread) != 2 || r.Spread[0].Member != "pg0" || r.Spread[1].Member != "pg1" || r.Member != "pg0" || r.Cluster != "c1" {
		t.Fatalf("spread over the two close members: %+v", r)
	}
	if err := Check(r, svc, map[string]map[string]netip.AddrPort{"c1": {"pg0": ms[0].Addr, "pg1": ms[1].Addr}}); err != nil {
		t.Fatalf("the decider's own spread fails Check: %v", err)
	}
	// pg1 degrades (connect errors): it leaves after Hold/4, not on one round.
	ms[1].ErrorRate = 0.2
	if r1 := d.Decide(now.Add(time.Second), svc, ms, &r); !r1.Same(r) {
		t.Fatalf("left on one slow round: %+v", r1)
	}
	r2 := d.Decide(now.Add(3*time.Second), svc, ms, &r)
	if len(r2.Targets()) != 1 || r2.Member != "pg0" || len(r2.Spread) != 0 || !strings.Contains(r2.Reason, "pg1 left") {
		t.Fatalf("degraded member kept: %+v", r2)
	}
	// It recovers: it rejoins only after Hold.
	ms[1].ErrorRate = 0
	now = now.Add(2 * time.Second)
	for i := 0; i < 4; i++ {
		now = now.Add(time.Second)
		if r3 := d.Decide(now, svc, ms, &r2); !r3.Same(r2) {
			t.Fatalf("rejoined before Hold (round %d): %+v", i, r3)
		}
	}
	now = now.Add(2 * time.Second)
	r4 := d.Decide(now, svc, ms, &r2)
	if len(r4.Spread) != 2 || !strings.Contains(r4.Reason, "pg1 joined") {
		t.Fatalf("not rejoined after Hold: %+v", r4)
	}
	// Small noise within twice the margin does not change the spread.
	ms[1].Latency = 2 * time.Millisecond
	if r5 := d.Decide(now.Add(time.Second), svc, ms, &r4); !r5.Same(r4) {
		t.Fatalf("noise changed the spread: %+v", r5)
	}
	// A firing alert removes a member at once.
	ms[0].Firing = true
	r6 := d.Decide(now.Add(2*time.Second), svc, ms, &r4)
	if len(r6.Targets()) != 1 || r6.Member != "pg1" {
		t.Fatalf("firing member kept: %+v", r6)
	}
}

func TestCheckSpread(t *testing.T) {
	svc := Service{Name: "pay-ro", Role: ReadOnly, Clusters: []string{"c1"}}
	allowed := map[string]map[string]netip.AddrPort{"c1": {"pg0": ap("10.0.0.10:5432"), "pg1": ap("10.0.0.11:5432")}}
	good := Route{V: Version, Service: "pay-ro", Role: ReadOnly, Cluster: "c1", Member: "pg0", Addr: "10.0.0.10:5432",
		Spread: []Target{{"c1", "pg0", "10.0.0.10:5432", 1}, {"c1", "pg1", "10.0.0.11:5432", 2}}}
	if err := Check(good, svc, allowed); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Route){
		"unknown member":  func(r *Route) { r.Spread = append(r.Spread, Target{"c1", "evil", "10.6.6.6:5432", 1}) },
		"wrong address":   func(r *Route) { r.Spread[1].Addr = "10.6.6.6:5432" },
		"zero weight":     func(r *Route) { r.Spread[1].Weight = 0 },
		"twice":           func(r *Route) { r.Spread[1] = r.Spread[0] },
		"first differs":   func(r *Route) { r.Member, r.Addr = "pg1", "10.0.0.11:5432" },
		"rw spread":       func(r *Route) { r.Role = ReadWrite },
		"too many":        func(r *Route) { r.Spread = append(r.Spread, make([]Target, MaxSpread)...) },
		"foreign cluster": func(r *Route) { r.Spread[1].Cluster = "c2" },
	} {
		r := good
		r.Spread = append([]Target(nil), good.Spread...)
		mut(&r)
		s := svc
		if r.Role == ReadWrite {
			s.Role = ReadWrite
		}
		if err := Check(r, s, allowed); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSpreadEqualWeights: members within the margin share new connects
// equally whatever their latency differences inside it; a member between
// the margin and twice it keeps its equal share (no step down), and one
// beyond twice the margin leaves instead of getting a smaller share.
func TestSpreadEqualWeights(t *testing.T) {
	p := Policy{Margin: 0.5, Hold: 4 * time.Second, ErrorPenalty: time.Second, Spread: 4}
	d := NewDecider(p)
	svc := Service{Name: "pay-ro", Role: ReadOnly, Clusters: []string{"c1"}}
	ms := []Member{
		{Cluster: "c1", Name: "pg0", Addr: ap("10.0.0.10:5432"), Healthy: true, Latency: 1000 * time.Microsecond},
		{Cluster: "c1", Name: "pg1", Addr: ap("10.0.0.11:5432"), Healthy: true, Latency: 1300 * time.Microsecond},
		{Cluster: "c1", Name: "pg2", Addr: ap("10.0.0.12:5432"), Healthy: true, Latency: 1490 * time.Microsecond},
	}
	weights := func(r Route) map[string]uint32 {
		out := map[string]uint32{}
		for _, tg := range r.Targets() {
			out[tg.Member] = tg.Weight
		}
		return out
	}
	now := time.Unix(1000, 0)
	r := d.Decide(now, svc, ms, nil)
	if w := weights(r); len(w) != 3 || w["pg0"] != 1 || w["pg1"] != 1 || w["pg2"] != 1 {
		t.Fatalf("weights within the margin: %v (%+v)", w, r)
	}
	// pg2 slows to 1.8x the best: beyond the margin, within twice it.
	ms[2].Latency = 1800 * time.Microsecond
	for i := 1; i <= 10; i++ {
		r2 := d.Decide(now.Add(time.Duration(i)*time.Second), svc, ms, &r)
		if !r2.Same(r) {
			t.Fatalf("second %d: the spread changed for a member within twice the margin: %v", i, weights(r2))
		}
	}
	// pg2 at 2.5x: it leaves after Hold/4; the others keep equal shares.
	ms[2].Latency = 2500 * time.Microsecond
	_ = d.Decide(now.Add(11*time.Second), svc, ms, &r)
	r3 := d.Decide(now.Add(13*time.Second), svc, ms, &r)
	if w := weights(r3); len(w) != 2 || w["pg0"] != 1 || w["pg1"] != 1 {
		t.Fatalf("after pg2 slowed beyond twice the margin: %v (%s)", w, r3.Reason)
	}
}
