package steer

import (
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
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
