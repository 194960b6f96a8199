package slack

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReplyQueueKeepsOrderPerThreadThroughAnOutage(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	n := env.replica(t, "r1", nil)
	a := alertOf("fpA", wire.StateFiring, env.clock.Now(), 1)
	b := alertOf("fpB", wire.StateFiring, env.clock.Now(), 1)
	b.Labels["host"] = "db-2" // another group, another thread
	for _, al := range []*wire.Alert{a, b} {
		if err := n.Notify(ctx, al); err != nil {
			t.Fatal(err)
		}
	}
	top, _ := topLevel(env.slack.Current())
	if len(top) != 2 {
		t.Fatalf("%d group messages, want 2", len(top))
	}
	reg := prometheus.NewRegistry()
	q := NewReplyQueue(n, ReplyQueueConfig{MaxReplies: 4, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond, Registry: reg})

	env.slack.SetDown(http.StatusServiceUnavailable)
	for _, r := range []struct{ fp, text string }{{"fpA", "A1"}, {"fpA", "A2"}, {"fpB", "B1"}, {"fpA", "A3"}, {"unknown", "nowhere"}} {
		if err := q.PostThreadReply(ctx, r.fp, r.text); err != nil {
			t.Fatalf("queueing %s: %v", r.text, err)
		}
	}
	if err := q.PostThreadReply(ctx, "fpB", "B2"); err == nil {
		t.Fatal("a fifth reply was queued beyond MaxReplies 4")
	}
	if got := testutil.ToFloat64(q.dropped.WithLabelValues(dropFull)); got != 1 {
		t.Errorf("dropped (queue full) = %v, want 1", got)
	}
	if q.Len() != 4 {
		t.Fatalf("queued %d, want 4", q.Len())
	}

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = q.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	// Slack answers 503 for a while: both threads are tried again and again.
	if err := eventuallyTrue(ctx, func() bool {
		failed := 0
		for _, r := range env.slack.Requests() {
			if r.Status == http.StatusServiceUnavailable {
				failed++
			}
		}
		return failed >= 6
	}); err != nil {
		t.Fatal("the queue did not retry during the outage")
	}
	if _, replies := topLevel(env.slack.Current()); len(replies) != 0 {
		t.Fatalf("replies posted while Slack was down: %+v", replies)
	}
	env.slack.SetDown(0)
	if err := eventuallyTrue(ctx, func() bool { return q.Len() == 0 }); err != nil {
		t.Fatalf("%d replies still queued after Slack came back", q.Len())
	}
	byThread := map[string][]string{}
	_, replies := topLevel(env.slack.Current())
	for _, r := range replies {
		byThread[r.ThreadTS] = append(byThread[r.ThreadTS], r.Text)
	}
	if got := byThread[top[0].TS]; !slices.Equal(got, []string{"A1", "A2", "A3"}) {
		t.Errorf("thread of fpA: %q, want A1 A2 A3 once each, in order", got)
	}
	if got := byThread[top[1].TS]; !slices.Equal(got, []string{"B1"}) {
		t.Errorf("thread of fpB: %q, want B1", got)
	}
	if d := testutil.ToFloat64(q.depth); d != 0 {
		t.Errorf("queue depth gauge %v after draining", d)
	}
}

func TestReplyQueueDropsWhatSlackRejects(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	n := env.replica(t, "r1", nil)
	if err := n.Notify(ctx, alertOf("fpA", wire.StateFiring, env.clock.Now(), 1)); err != nil {
		t.Fatal(err)
	}
	q := NewReplyQueue(n, ReplyQueueConfig{RetryMin: 5 * time.Millisecond})
	env.slack.FailNext(1, http.StatusBadRequest, 0) // a client error: not retried
	for _, text := range []string{"first", "second"} {
		if err := q.PostThreadReply(ctx, "fpA", text); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = q.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	if err := eventuallyTrue(ctx, func() bool { return q.Len() == 0 }); err != nil {
		t.Fatalf("%d replies still queued", q.Len())
	}
	_, replies := topLevel(env.slack.Current())
	if len(replies) != 1 || replies[0].Text != "second" {
		t.Errorf("replies %+v, want only the second (the first was rejected)", replies)
	}
	if got := testutil.ToFloat64(q.dropped.WithLabelValues(dropRejected)); got != 1 {
		t.Errorf("dropped (rejected) = %v, want 1", got)
	}
}

// eventuallyTrue polls cond until it holds or ctx ends.
func eventuallyTrue(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
