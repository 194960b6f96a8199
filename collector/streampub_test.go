package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

// TestStreamPublisherRetriesAndBounds publishes while the input stream
// does not exist yet (as during a stream leader election: nobody
// answers): the messages wait, the oldest beyond the buffer are dropped
// and counted, and once the stream exists the rest are stored in order,
// a repeated id once.
func TestStreamPublisherRetriesAndBounds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := bus.JetStream(nc)
	p, err := NewStreamPublisher(js, StreamPublisherConfig{Buffer: 3, Timeout: 200 * time.Millisecond, RetryWait: 20 * time.Millisecond}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	subj := wire.SamplesSubject("c", "h1")
	for i := range 5 {
		if err := p.PublishID(subj, []byte{byte('0' + i)}, "c.h1.r."+string(rune('0'+i))); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, func() bool { return p.Stats().Retried > 0 })
	if st := p.Stats(); st.Dropped < 2 || st.Published != 0 {
		t.Fatalf("without a stream: %+v", st)
	}
	if _, err := bus.EnsureInputStream(ctx, js, bus.InputOptions{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, func() bool { return p.Stats().Buffered == 0 })
	// The same id again: stored once.
	_ = p.PublishID(subj, []byte("4"), "c.h1.r.4")
	waitUntil(t, 10*time.Second, func() bool { return p.Stats().Buffered == 0 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(subj, nil); err == nil {
		t.Error("Publish after Run ended accepted")
	}
	s, _ := js.Stream(ctx, bus.InputStream)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range b.Messages() {
		got = append(got, string(m.Data()))
	}
	st := p.Stats()
	if strings.Join(got, "") != "234" || st.Dropped != 2 || st.Published != 4 {
		t.Errorf("stored %q, stats %+v; want 234 stored, 2 dropped, 4 acknowledged (one a duplicate)", got, st)
	}
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type idRecorder struct{ ids []string }

func (r *idRecorder) Publish(string, []byte) error { return nil }
func (r *idRecorder) PublishID(_ string, _ []byte, id string) error {
	r.ids = append(r.ids, id)
	return nil
}

func TestBatchesCarryIDs(t *testing.T) {
	var r idRecorder
	c, err := New(Config{Cluster: "c", Host: "h1"}, &r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.publishBatch(&wire.Batch{Cluster: "c", Host: "h1", Seq: 7})
	if len(r.ids) != 1 || !strings.HasPrefix(r.ids[0], "c.h1.") || !strings.HasSuffix(r.ids[0], ".7") || r.ids[0] != c.batchID(7) {
		t.Fatalf("ids %q", r.ids)
	}
}
