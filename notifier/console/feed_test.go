package console

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/nats-io/nats.go/jetstream"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestFeedPrintsAcksSilencesAndFailoverDecisions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "feed-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := bus.JetStream(nc)
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	sil, err := silence.Open(ctx, js, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuf{}
	f := NewFeed(out, sil, 20*time.Millisecond, nil)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(rctx, js) }()
	defer func() { stop(); <-done }()

	// Published until the ordered consumers exist (they start at "new").
	wait := func(want string, publish func()) {
		t.Helper()
		for !strings.Contains(out.String(), want) {
			if publish != nil {
				publish()
			}
			select {
			case <-ctx.Done():
				t.Fatalf("console never printed %q:\n%s", want, out.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	n := 0
	wait("ACK      acknowledge fpA by U123 via slack", func() {
		n++
		data, _ := wire.EncodeAck(&wire.Ack{Fingerprint: "fpA", Cluster: "c", Action: wire.AckAcknowledge, By: "U123", Via: "slack", At: time.Now(), ID: "a" + string(rune('0'+n%10))})
		_, _ = js.Publish(ctx, wire.AckSubject("c"), data)
	})
	wait("FAILOVER switchover refused cluster=c", func() {
		data, _ := wire.EncodeAction(&wire.Action{ID: "x", Cluster: "c", Kind: "switchover", Decision: "refused", Safeguard: "cooldown", Reason: "too soon", At: time.Now()})
		_, _ = js.Publish(ctx, wire.ActionSubject("c"), data, jetstream.WithMsgID(time.Now().String()))
	})
	wait("RESOLVE  resolve acted cluster=c fpA", func() {
		data, _ := wire.EncodeAction(&wire.Action{ID: "r", Cluster: "c", Fingerprint: "fpA", Kind: wire.ActionKindResolve, Decision: "acted", Reason: "resolved by slack:U123", At: time.Now()})
		_, _ = js.Publish(ctx, wire.ResolveActionSubject("c"), data, jetstream.WithMsgID(time.Now().String()))
	})
	s, err := sil.Add(ctx, silence.Silence{Matchers: labels.Matchers{labels.MustParse("host=db-1")}, StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour), CreatedBy: "cli:alice", Comment: "upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	wait("SILENCE  "+s.ID+` {host="db-1"} until`, nil)
	if err := sil.Expire(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	wait("UNSILENC "+s.ID, nil)
}
