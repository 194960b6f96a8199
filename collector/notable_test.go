package collector

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// startNoProbes runs a collector whose objects do not load (no privileges
// needed) and returns it with its publisher; it stops with the test.
func startNoProbes(t *testing.T, cfg Config) (*Collector, *fakePublisher) {
	t.Helper()
	pub := newFakePublisher()
	cfg.Cluster, cfg.Host = "test", "notable"
	c, err := New(cfg, pub, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.objects {
		c.objects[i].load = func() (*ebpf.CollectionSpec, error) { return nil, errors.New("no object for this test") }
	}
	runStarted(t, c)
	return c, pub
}

// nextBatch waits up to within for a sample batch.
func nextBatch(t *testing.T, pub *fakePublisher, within time.Duration) *wire.Batch {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-pub.msgs:
			if b, err := wire.DecodeBatch(m.data); err == nil {
				return b
			}
		case <-deadline:
			return nil
		}
	}
}

// TestNotableEventCutsBatchShort: with an hour-long interval, a retransmit
// event makes the collector publish the batch it is gathering once it is
// NotableInterval old, and count it; a slow-query event does not.
func TestNotableEventCutsBatchShort(t *testing.T) {
	notable := 50 * time.Millisecond
	c, pub := startNoProbes(t, Config{Interval: time.Hour, NotableInterval: notable})

	c.handleRecord(encodeEvent(t, sampleEvent())) // a retransmit
	b := nextBatch(t, pub, 30*time.Second)
	if b == nil {
		t.Fatal("no early batch after a retransmit event (interval is an hour)")
	}
	if b.Interval < notable || b.Seq != 1 {
		t.Fatalf("early batch: seq %d covering %s, want seq 1 covering at least %s", b.Seq, b.Interval, notable)
	}
	if n := testutil.ToFloat64(c.m.earlyBatches); n != 1 {
		t.Fatalf("early batches = %v, want 1", n)
	}

	reset := sampleEvent()
	reset.Kind = bpf.EventTCPResetSent
	c.handleRecord(encodeEvent(t, reset))
	if b := nextBatch(t, pub, 30*time.Second); b == nil || b.Seq != 2 {
		t.Fatalf("no early batch after a reset event: %+v", b)
	}

	c.handleRecord(slowQueryRecord(t))
	if b := nextBatch(t, pub, 20*notable); b != nil {
		t.Fatalf("a slow query cut a batch short: %+v", b)
	}
	if n := testutil.ToFloat64(c.m.earlyBatches); n != 2 {
		t.Fatalf("early batches = %v, want 2", n)
	}
}

// TestNotableIntervalOff: 0s in the section (negative in Config) keeps
// one batch per interval whatever arrives.
func TestNotableIntervalOff(t *testing.T) {
	s := DefaultSection()
	if s.Config("c", "h").NotableInterval != DefaultNotableInterval {
		t.Fatalf("default section: notable %s", s.Config("c", "h").NotableInterval)
	}
	s.NotableInterval = 0
	cfg := s.Config("c", "h")
	if cfg.NotableInterval >= 0 {
		t.Fatalf("0s gives %s, want off (negative)", cfg.NotableInterval)
	}
	c, pub := startNoProbes(t, Config{Interval: time.Hour, NotableInterval: cfg.NotableInterval})
	c.handleRecord(encodeEvent(t, sampleEvent()))
	if b := nextBatch(t, pub, 300*time.Millisecond); b != nil {
		t.Fatalf("early batch with notable_interval off: %+v", b)
	}
	if n := testutil.ToFloat64(c.m.earlyBatches); n != 0 {
		t.Fatalf("early batches = %v", n)
	}
}

// slowQueryRecord is a ring buffer record of one slow query.
func slowQueryRecord(t *testing.T) []byte {
	ev := bpf.PGQueryEvent{Kind: bpf.EventDBSlowQuery, Protocol: protocolSimple, Instance: 1, Pid: 8, TsNs: 1e9, DurationNs: 250e6}
	copy(ev.Text[:], []int8{'S', 'E', 'L', 'E', 'C', 'T', ' ', '1'})
	return encodeQueryEvent(t, ev)
}

// TestEarlyBatchedSignalsAreTheNotableOnes: rules.EarlyBatchedSignals,
// which `mciv rules check` warns about, are the signals of the events that
// cut a batch short (retransmits and resets).
func TestEarlyBatchedSignalsAreTheNotableOnes(t *testing.T) {
	var notable []string
	for _, kind := range []string{eventKindRetransmit, eventKindReset, eventKindSlowQuery} {
		if sig, ok := notableSignal(kind); ok {
			notable = append(notable, sig)
		}
	}
	if got := rules.EarlyBatchedSignals(); !slices.Equal(got, notable) {
		t.Errorf("rules.EarlyBatchedSignals() %v, notable events' signals %v", got, notable)
	}
}
