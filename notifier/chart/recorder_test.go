package chart

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

func TestRecorderChartsAnAlert(t *testing.T) {
	r := NewRecorder(time.Minute, 0)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 90 {
		r.Add(&wire.Batch{Cluster: "c", Host: "db-1", Start: t0.Add(time.Duration(i) * time.Second), Interval: time.Second, Series: []wire.Series{
			{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: 2, Labels: []wire.Label{{Name: "peer", Value: "a"}}},
			{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: 3, Labels: []wire.Label{{Name: "peer", Value: "b"}}},
			{Signal: "rtt", Kind: wire.KindHistogram, Hist: &wire.Histogram{Count: 2, Sum: 10}},
		}})
	}
	pts := r.Points("c", "db-1", "tcp_retransmits_total")
	if len(pts) != 61 || pts[0].V != 5 {
		t.Errorf("%d points (first %v), want the last minute summed to 5/s", len(pts), pts[0])
	}
	if p := r.Points("c", "db-1", "rtt"); len(p) == 0 || p[0].V != 5 {
		t.Errorf("histogram mean: %v", p)
	}
	a := &wire.Alert{Rule: "R", Signal: "tcp_retransmits_total", Labels: map[string]string{"cluster": "c", "host": "db-1"}, Baseline: 4, Threshold: 6, StartsAt: t0.Add(80 * time.Second)}
	b, err := r.Chart(context.Background(), a)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("Chart: %d bytes, %v", len(b), err)
	}
	a.Labels["host"] = "unknown"
	if b, err := r.Chart(context.Background(), a); b != nil || err != nil {
		t.Errorf("chart of an unknown host: %d bytes, %v", len(b), err)
	}
}

func TestRecorderSubscribes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "chart-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := NewRecorder(0, 0)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx, nc, nil) }()
	b := &wire.Batch{Cluster: "c", Host: "h", Start: time.Now(), Interval: time.Second, Series: []wire.Series{{Signal: "s", Kind: wire.KindGauge, Value: 3}}}
	for len(r.Points("c", "h", "s")) == 0 {
		if err := nc.Publish(wire.SamplesSubject("c", "h"), wire.EncodeBatch(b)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the recorder never recorded a batch")
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRecorderCapsSignalsPerHostAndForgetsStaleSeries(t *testing.T) {
	r := NewRecorder(time.Minute, 0)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	flood := &wire.Batch{Cluster: "c", Host: "bad", Start: t0, Interval: time.Second}
	for i := range 100 {
		flood.Series = append(flood.Series, wire.Series{Signal: fmt.Sprintf("sig_%d", i), Kind: wire.KindGauge, Value: 1})
	}
	r.Add(flood)
	if got := r.Refused(); got != 100-MaxSignalsPerHost {
		t.Fatalf("refused %d, want %d", got, 100-MaxSignalsPerHost)
	}
	good := &wire.Batch{Cluster: "c", Host: "good", Start: t0, Interval: time.Second, Series: []wire.Series{{Signal: "s", Kind: wire.KindGauge, Value: 3}}}
	r.Add(good)
	if len(r.Points("c", "good", "s")) != 1 {
		t.Fatal("another host's series was not recorded")
	}
	// Two windows later the flooding host's series are gone.
	good.Start = t0.Add(2 * time.Minute)
	r.Add(good)
	r.mu.Lock()
	n, hosts := len(r.series), len(r.perHost)
	r.mu.Unlock()
	if n != 1 || hosts != 1 {
		t.Fatalf("%d series of %d hosts kept, want only good's", n, hosts)
	}
}
