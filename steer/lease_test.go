package steer

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/mciv/mciv/steer/routes"
)

func TestOneControllerWritesRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, nc, js := startBus(t, ctx)
	pg0, pg1 := listener(t), listener(t)
	cfg := Config{
		Controller: true,
		Services:   []ServiceConfig{{Name: "pay-rw", Address: "127.77.0.1:5432", Role: "rw", Clusters: []string{"pay"}}},
		Clusters:   map[string]ClusterConfig{"pay": {Members: map[string]string{"pg0": pg0, "pg1": pg1}}},
		Interval:   yamltime.Duration(50 * time.Millisecond),
		LeaseTTL:   yamltime.Duration(time.Second),
	}
	var ctls [2]*Controller
	var stops [2]context.CancelFunc
	done := make(chan struct{}, 2)
	for i := range ctls {
		c, err := NewController(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctls[i] = c
		cctx, stop := context.WithCancel(ctx)
		stops[i] = stop
		go func() { _ = c.Run(cctx, nc, js); done <- struct{}{} }()
	}
	defer stops[0]()
	defer stops[1]()
	// Exactly one leads.
	eventually(t, ctx, "a leader", func() bool { return ctls[0].Leading() || ctls[1].Leading() })
	time.Sleep(300 * time.Millisecond)
	if ctls[0].Leading() == ctls[1].Leading() {
		t.Fatalf("leading: %v %v", ctls[0].Leading(), ctls[1].Leading())
	}
	lead, other := 0, 1
	if ctls[1].Leading() {
		lead, other = 1, 0
	}
	kv, err := js.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	switchTo := func(id, to string) {
		t.Helper()
		data, _ := wire.EncodeAction(&wire.Action{ID: id, Cluster: "pay", Kind: "switchover", Decision: "acted",
			Outcome: "succeeded", To: to, At: time.Now()})
		if _, err := js.Publish(ctx, wire.ActionSubject("pay"), data); err != nil {
			t.Fatal(err)
		}
	}
	routeBy := func(member string) string {
		var by string
		eventually(t, ctx, "rw to "+member, func() bool {
			e, err := kv.Get(ctx, "pay-rw")
			if err != nil {
				return false
			}
			var r routes.Route
			_ = json.Unmarshal(e.Value(), &r)
			by = r.By
			return r.Member == member
		})
		return by
	}
	// Both controllers hear the switchovers; only the leader writes.
	switchTo("sw-1", "pg1")
	if by := routeBy("pg1"); by != ctls[lead].ID() {
		t.Fatalf("route written by %q, the leader is %q", by, ctls[lead].ID())
	}
	switchTo("sw-2", "pg0")
	if by := routeBy("pg0"); by != ctls[lead].ID() {
		t.Fatalf("route written by %q, the leader is %q", by, ctls[lead].ID())
	}
	// Every value the bucket ever held came from the leader.
	hist, err := kv.History(ctx, "pay-rw")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist {
		var r routes.Route
		_ = json.Unmarshal(e.Value(), &r)
		if r.By != ctls[lead].ID() {
			t.Fatalf("revision %d written by %q, not the leader %q", e.Revision(), r.By, ctls[lead].ID())
		}
	}
	// The leader stops: the other takes over and writes the next change.
	stops[lead]()
	<-done
	eventually(t, ctx, "takeover", func() bool { return ctls[other].Leading() })
	switchTo("sw-3", "pg1")
	if by := routeBy("pg1"); by != ctls[other].ID() {
		t.Fatalf("after the takeover the route was written by %q, want %q", by, ctls[other].ID())
	}
}

func TestLeaseExpiresWithoutRenewal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, js := startBus(t, ctx)
	kv, err := ensureLeaseBucket(ctx, js, "TEST_LEASE", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a := &lease{kv: kv, id: "a", ttl: time.Second}
	b := &lease{kv: kv, id: "b", ttl: time.Second}
	if !a.acquire(ctx) || b.acquire(ctx) {
		t.Fatal("first acquire: a must hold, b must not")
	}
	if !a.acquire(ctx) || !a.valid() || b.holder(ctx) != "a" {
		t.Fatal("renewal failed")
	}
	// a crashes (no release, no renewal): b gets it after the TTL, and a's
	// stale renewal then fails (compare-and-set on the revision).
	start := time.Now()
	eventually(t, ctx, "b takes the expired lease", func() bool { return b.acquire(ctx) })
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("b took a live lease after %s", waited)
	}
	if a.valid() {
		t.Fatal("a still believes it may write after its lease expired")
	}
	if a.acquire(ctx) {
		t.Fatal("a renewed a lease b holds")
	}
}
