package steer

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/internal/yamltime"
	"github.com/mciv/mciv/steer/routes"
)

func TestControllerFoldsCollectorSignals(t *testing.T) {
	cfg := Config{Controller: true,
		Services: []ServiceConfig{{Name: "pay-ro", Address: "127.77.0.2:5432", Role: "ro", Clusters: []string{"pay"}}},
		Clusters: map[string]ClusterConfig{"pay": {Members: map[string]string{"pg0": "10.0.0.10:5432", "pg1": "10.0.0.11:5432"}}}}
	c, err := NewController(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	hist := func(mean float64, n uint64) *wire.Histogram {
		return &wire.Histogram{Count: n, Sum: mean * float64(n)}
	}
	b := &wire.Batch{Cluster: "app", Host: "web-1", Seq: 1, Start: time.Now(), Interval: time.Second, Series: []wire.Series{
		{Signal: "tcp_rtt_seconds", Kind: wire.KindHistogram, Labels: []wire.Label{{Name: "peer", Value: "10.0.0.10"}}, Hist: hist(0.004, 10)},
		{Signal: "tcp_connect_seconds", Kind: wire.KindHistogram, Labels: []wire.Label{{Name: "peer", Value: "10.0.0.11:5432"}}, Hist: hist(0.001, 3)},
		{Signal: "tcp_connect_errors_total", Kind: wire.KindCounter, Labels: []wire.Label{{Name: "peer", Value: "10.0.0.11:5432"}}, Value: 1},
		{Signal: "tcp_rtt_seconds", Kind: wire.KindHistogram, Labels: []wire.Label{{Name: "peer", Value: "10.9.9.9"}}, Hist: hist(1, 1)},
	}}
	c.onBatch(wire.EncodeBatch(b))
	db := &wire.Batch{Cluster: "pay", Host: "pg1", Seq: 1, Start: time.Now(), Interval: time.Second, Series: []wire.Series{
		{Signal: "db_query_seconds", Kind: wire.KindHistogram, Labels: []wire.Label{{Name: "instance", Value: "5432"}}, Hist: hist(0.002, 100)},
	}}
	c.onBatch(wire.EncodeBatch(db))
	c.onBatch([]byte("garbage"))
	ms := c.Members()
	if ms[0].Name != "pg0" || ms[0].RTT != 4*time.Millisecond || ms[0].ErrorRate != 0 {
		t.Errorf("pg0: %+v", ms[0])
	}
	if ms[1].QueryLatency != 2*time.Millisecond || ms[1].ErrorRate != 0.25*0.25 {
		t.Errorf("pg1: %+v", ms[1])
	}
}

func TestControllerTracksFiringAlerts(t *testing.T) {
	cfg := Config{Controller: true,
		Services: []ServiceConfig{{Name: "pay-ro", Address: "127.77.0.2:5432", Role: "ro", Clusters: []string{"pay"}}},
		Clusters: map[string]ClusterConfig{"pay": {Members: map[string]string{"pg0": "10.0.0.10:5432"}}}}
	c, err := NewController(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	al := &wire.Alert{Fingerprint: "fp", Rule: "r", State: wire.StateFiring, Labels: map[string]string{"cluster": "pay", "host": "pg0"}}
	data, _ := wire.EncodeAlert(al)
	c.onAlert(data)
	if !c.Members()[0].Firing {
		t.Fatal("firing alert not tracked")
	}
	al.State = wire.StateResolved
	data, _ = wire.EncodeAlert(al)
	c.onAlert(data)
	if c.Members()[0].Firing {
		t.Fatal("resolved alert still firing")
	}
}

// TestSwitchoverRouteDoesNotWaitForRefresh: the actuator's switchover
// record moves the rw route while the controller's topology and probe
// round is stuck (a member that does not answer, a slow Patroni API): the
// route follows the record, not the next refresh.
func TestSwitchoverRouteDoesNotWaitForRefresh(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, nc, js := startBus(t, ctx)
	pg0, pg1 := listener(t), listener(t)
	cfg := Config{
		Controller: true,
		Services:   []ServiceConfig{{Name: "pay-rw", Address: "127.77.0.1:5432", Role: "rw", Clusters: []string{"pay"}}},
		Clusters:   map[string]ClusterConfig{"pay": {Members: map[string]string{"pg0": pg0, "pg1": pg1}}},
		Interval:   yamltime.Duration(50 * time.Millisecond),
	}
	c, err := NewController(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		stall   bool
		stalled = make(chan struct{}, 8)
		release = make(chan struct{})
	)
	c.dial = func(context.Context, string) error {
		mu.Lock()
		s := stall
		mu.Unlock()
		if s {
			stalled <- struct{}{}
			<-release // ignores its deadline: a refresh that hangs
		}
		return nil
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = c.Run(rctx, nc, js); close(done) }()
	defer func() { stop(); <-done }()
	defer close(release)
	eventually(t, ctx, "the lease", c.Leading)
	mu.Lock()
	stall = true
	mu.Unlock()
	select {
	case <-stalled:
	case <-ctx.Done():
		t.Fatal("refresh never probed")
	}
	kv, err := js.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := wire.EncodeAction(&wire.Action{ID: "sw-stuck", Cluster: "pay", Kind: "switchover", Decision: "acted",
		Outcome: "succeeded", From: "pg0", To: "pg1", Evidence: map[string]string{"new_leader": "pg1"}, At: time.Now()})
	if _, err := js.Publish(ctx, wire.ActionSubject("pay"), data); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "rw route to pg1 while the refresh hangs", func() bool {
		e, err := kv.Get(ctx, "pay-rw")
		if err != nil {
			return false
		}
		var r routes.Route
		return json.Unmarshal(e.Value(), &r) == nil && r.Member == "pg1" && r.Addr == pg1
	})
}
