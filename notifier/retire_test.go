package notifier_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/console"
	"github.com/nats-io/nats.go/jetstream"
)

// A notifier of an earlier version consumed the alerts with the shared
// consumer mciv-notifier; the per-integration lanes start where it stood
// and, once they are past it and it stays idle, delete it. While an old
// notifier still pulls from it, it stays.
func TestOldSharedConsumerRetiredOnceTheLanesTookOver(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	old, err := env.js.CreateOrUpdateConsumer(ctx, bus.AlertsStream, jetstream.ConsumerConfig{
		Durable: notifier.DefaultDurable, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: wire.AlertsWildcard,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"db-1", "db-2", "db-3"} {
		env.publish(ctx, alert("RuleA", host))
	}
	// The old notifier handled them all, and one of its replicas still
	// waits for more (a pull that expires after 3 s).
	for range 3 {
		m, err := old.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pulling := make(chan struct{})
	go func() {
		defer close(pulling)
		_, _ = old.Next(jetstream.FetchMaxWait(3 * time.Second))
	}()
	if err := eventually(ctx, func() bool {
		info, err := old.Info(ctx)
		return err == nil && info.NumWaiting > 0
	}); err != nil {
		t.Fatal("the old notifier's pull never waited")
	}

	out := newLines()
	cfg := fast
	cfg.RetireInterval = 20 * time.Millisecond
	r := start(t, ctx, env.js, cfg, console.New(out))
	time.Sleep(200 * time.Millisecond) // ten retire intervals: a negative check
	if _, err := env.js.Consumer(ctx, bus.AlertsStream, notifier.DefaultDurable); err != nil {
		t.Fatalf("the old consumer was deleted while a notifier pulled from it: %v", err)
	}
	<-pulling
	if err := eventually(ctx, func() bool {
		_, err := env.js.Consumer(ctx, bus.AlertsStream, notifier.DefaultDurable)
		return errors.Is(err, jetstream.ErrConsumerNotFound)
	}); err != nil {
		t.Fatal("the old shared consumer was not retired")
	}
	// The lanes go on from where the old consumer stood: only what is new.
	seq := env.publish(ctx, alert("RuleA", "db-4"))
	env.waitAcked(ctx, notifier.LaneDurable(notifier.DefaultDurable, "console"), seq)
	if lines := out.get(); len(lines) != 1 || !strings.Contains(lines[0], "db-4") {
		t.Fatalf("the console lane printed %q, want only the new alert of db-4", lines)
	}
	r.stop()
}
