package actuator

import (
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/wire"
)

// TestEvaluate checks the pure safeguards on a hand-built view.
func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)
	cfg := testConfig("x")
	cfg.SetDefaults()
	base := func() view {
		return view{
			now:    now,
			alert:  &wire.Alert{Rule: "r", StartsAt: now.Add(-20 * time.Second), Labels: map[string]string{"cluster": testCluster, "host": "db-1"}},
			top:    labTopology(),
			seen:   []string{"db-1", "db-2", "db-3"},
			firing: map[string]string{},
			toward: map[string]Degradation{"db-2": {Batches: 3, Signal: "s", Max: 1}, "db-3": {Batches: 2, Signal: "s", Max: 1}},
			own:    map[string]int{},
		}
	}
	p, r := evaluate(&cfg, base(), map[string]string{})
	if r != nil || p.To != "db-2" || strings.Join(p.Vantage, ",") != "db-2,db-3" {
		t.Fatalf("plan %+v refusal %v", p, r)
	}
	cases := map[string]struct {
		mut   func(v *view)
		guard Safeguard
	}{
		"primary's own batches do not count": {func(v *view) { v.toward = map[string]Degradation{"db-1": {Batches: 9}, "db-2": {Batches: 9}} }, GuardVantage},
		"too few batches":                    {func(v *view) { v.toward["db-3"] = Degradation{Batches: 1} }, GuardVantage},
		"no leader":                          {func(v *view) { v.top.Members[0].Role = failover.RoleReplica }, GuardPrimary},
		"lagging candidates":                 {func(v *view) { v.top.Members[1].LagBytes, v.top.Members[2].LagBytes = 5<<20, failover.LagUnknown }, GuardCandidate},
		"unseen candidates":                  {func(v *view) { v.seen = []string{"db-1"} }, GuardCandidate},
		"one other host firing is fine":      {func(v *view) { v.firing["db-3"] = "r" }, ""},
	}
	for name, tc := range cases {
		v := base()
		tc.mut(&v)
		_, r := evaluate(&cfg, v, map[string]string{})
		switch {
		case tc.guard == "" && r != nil:
			t.Errorf("%s: refused %v", name, r)
		case tc.guard != "" && (r == nil || r.Guard != tc.guard):
			t.Errorf("%s: got %v, want %s", name, r, tc.guard)
		}
	}
	// The healthiest candidate wins: db-3 when db-2 has an alert of its own.
	v := base()
	v.firing["db-2"] = "r"
	if p, r := evaluate(&cfg, v, map[string]string{}); r != nil || p.To != "db-3" {
		t.Fatalf("plan %+v refusal %v", p, r)
	}
}

func TestDescribe(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 20, 0, time.UTC)
	a := &wire.Alert{Stat: "p99", Signal: "latency", Value: 0.12, Baseline: 0.01, StartsAt: now.Add(-20 * time.Second)}
	if got := describe(a, now); got != "p99 latency 12x baseline for 20s" {
		t.Errorf("describe = %q", got)
	}
	a = &wire.Alert{Rule: "r", Value: 3, Threshold: 2, StartsAt: now}
	if got := describe(a, now); got != "r 3 (threshold 2) for 0s" {
		t.Errorf("describe = %q", got)
	}
	if joinAnd([]string{"a", "b", "c"}) != "a, b and c" || joinAnd(nil) != "nobody" || joinAnd([]string{"a"}) != "a" {
		t.Error("joinAnd")
	}
}
