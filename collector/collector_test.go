package collector

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/wire"
)

// message is one published message.
type message struct {
	subject string
	data    []byte
}

// fakePublisher hands published messages to a channel.
type fakePublisher struct {
	msgs chan message
	err  error
}

func newFakePublisher() *fakePublisher { return &fakePublisher{msgs: make(chan message, 1024)} }

func (p *fakePublisher) Publish(subject string, data []byte) error {
	if p.err != nil {
		return p.err
	}
	select {
	case p.msgs <- message{subject, append([]byte(nil), data...)}:
	default: // a test that stopped reading does not block the collector
	}
	return nil
}

func TestNewChecksConfig(t *testing.T) {
	pub := newFakePublisher()
	bad := []struct {
		name string
		cfg  Config
		pub  Publisher
	}{
		{"no cluster", Config{Host: "h"}, pub},
		{"dotted host", Config{Cluster: "c", Host: "a.b"}, pub},
		{"no publisher", Config{Cluster: "c", Host: "h"}, nil},
		{"negative interval", Config{Cluster: "c", Host: "h", Interval: -time.Second}, pub},
		{"negative events", Config{Cluster: "c", Host: "h", MaxEventsPerInterval: -1}, pub},
	}
	for _, tt := range bad {
		if _, err := New(tt.cfg, tt.pub, nil, nil); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	c, err := New(Config{Cluster: "c", Host: "h"}, pub, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.Interval != DefaultInterval || c.cfg.MaxEventsPerInterval != DefaultMaxEventsPerInterval {
		t.Fatalf("defaults not applied: %+v", c.cfg)
	}
	if len(c.Hooks()) != 0 {
		t.Fatalf("hooks before Run: %v", c.Hooks())
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Cluster: "c", Host: "h"}, pub, reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Cluster: "c", Host: "h"}, pub, reg, nil); err == nil {
		t.Fatal("registering twice on one registry: no error")
	}
}

// TestRunWithoutProbes: when the eBPF object cannot even load, Run still
// publishes a batch every interval (with mciv_collector_up only), reports
// the hook as down and returns nil when ctx ends. Needs no privileges.
func TestRunWithoutProbes(t *testing.T) {
	pub := newFakePublisher()
	reg := prometheus.NewRegistry()
	c, err := New(Config{Cluster: "test", Host: "nohooks", Interval: 10 * time.Millisecond}, pub, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.objects {
		c.objects[i].load = func() (*ebpf.CollectionSpec, error) { return nil, errors.New("no object for this test") }
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()

	select {
	case <-c.Started():
	case <-ctx.Done():
		t.Fatal("Run did not start")
	}
	hooks := c.Hooks()
	if len(hooks) == 0 {
		t.Fatal("no hook reported")
	}
	for _, h := range hooks {
		if h.Attached || !strings.Contains(h.Error, "no object for this test") {
			t.Fatalf("hooks: %+v", hooks)
		}
	}
	if v := testutil.ToFloat64(c.m.hookUp.WithLabelValues("tcp_retransmit_skb")); v != 0 {
		t.Fatalf("hook_up = %v", v)
	}

	var lastSeq uint64
	for i := range 3 {
		var m message
		select {
		case m = <-pub.msgs:
		case <-ctx.Done():
			t.Fatalf("batch %d did not come", i)
		}
		if m.subject != wire.SamplesSubject("test", "nohooks") {
			t.Fatalf("subject %q", m.subject)
		}
		b, err := wire.DecodeBatch(m.data)
		if err != nil {
			t.Fatal(err)
		}
		if b.Seq != lastSeq+1 {
			t.Fatalf("seq %d after %d", b.Seq, lastSeq)
		}
		lastSeq = b.Seq
		if b.Interval <= 0 || b.Start.IsZero() {
			t.Fatalf("batch without its interval: %+v", b)
		}
		if len(b.Series) != 1 || b.Series[0].Signal != "mciv_collector_up" || b.Series[0].Value != 1 {
			t.Fatalf("series %+v", b.Series)
		}
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after its context ended")
	}
	if err := c.Run(ctx); err == nil {
		t.Fatal("second Run: no error")
	}
	if n := testutil.ToFloat64(c.m.batches); n < 3 {
		t.Fatalf("batches_published_total = %v", n)
	}
}

func TestHandleRecordLimitsEvents(t *testing.T) {
	pub := newFakePublisher()
	c, err := New(Config{Cluster: "test", Host: "h", MaxEventsPerInterval: 2}, pub, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := encodeEvent(t, sampleEvent())
	for range 5 {
		c.handleRecord(raw)
	}
	c.handleRecord([]byte{42}) // malformed
	if got := len(pub.msgs); got != 2 {
		t.Fatalf("published %d events, want 2", got)
	}
	m := <-pub.msgs
	if m.subject != wire.EventsSubject("test", "h") {
		t.Fatalf("subject %q", m.subject)
	}
	e, err := wire.DecodeEvent(m.data)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != "tcp_retransmit" || e.Labels["peer"] != "127.0.0.2:5432" {
		t.Fatalf("event %+v", e)
	}
	for name, want := range map[string]float64{
		"published":  2,
		"suppressed": 3,
		"malformed":  1,
	} {
		var got float64
		switch name {
		case "published":
			got = testutil.ToFloat64(c.m.eventsPublished)
		case "suppressed":
			got = testutil.ToFloat64(c.m.eventsSuppressed)
		case "malformed":
			got = testutil.ToFloat64(c.m.eventsMalformed)
		}
		if got != want {
			t.Errorf("events %s = %v, want %v", name, got, want)
		}
	}
	// A new interval has a new budget.
	c.budget.reset()
	c.handleRecord(raw)
	if testutil.ToFloat64(c.m.eventsPublished) != 3 {
		t.Fatal("no event after the budget was reset")
	}

	pub.err = errors.New("nats down")
	c.budget.reset()
	c.handleRecord(raw)
	if v := testutil.ToFloat64(c.m.publishErrors.WithLabelValues("events")); v != 1 {
		t.Fatalf("publish errors = %v", v)
	}
}
