package slack

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/nats-io/nats.go/jetstream"
)

// startThreads runs n's thread feed until the test ends, and returns once
// its consumers exist.
func startThreads(t *testing.T, ctx context.Context, js jetstream.JetStream, n *Incidents) {
	t.Helper()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.RunThreads(runCtx, js) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	for _, c := range []struct{ stream, durable string }{{bus.AcksStream, AcksDurable}, {bus.ActionsStream, ActionsDurable}} {
		for {
			if _, err := js.Consumer(ctx, c.stream, c.durable); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("thread feed consumer never appeared")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// publishDuringGroupWait runs a replica whose alert fpA waits out a 30 s
// group_wait, publishes data (msgID) on subject while it does, checks that
// nothing reached Slack, then lets the group be posted and waits for want
// Slack messages in all, whose error it returns.
func publishDuringGroupWait(t *testing.T, ctx context.Context, env *incidentsEnv, subject string, data []byte, msgID string, want int) error {
	t.Helper()
	n := env.replica(t, "r1", func(c *IncidentsConfig) { c.Routes = mustTree(t, "route:\n  group_wait: 30s\n") })
	startThreads(t, ctx, env.js, n)
	a := alertOf("fpA", wire.StateFiring, env.clock.Now(), 12.3)
	if _, ok := errors.AsType[*notifier.DeferError](n.Notify(ctx, a)); !ok {
		t.Fatal("the alert was not deferred by group_wait")
	}
	if _, err := env.js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatal(err)
	}
	// The feed has seen the message and found no Slack message for it.
	time.Sleep(1500 * time.Millisecond)
	if msgs := env.slack.Messages(); len(msgs) != 0 {
		t.Fatalf("posted during group_wait: %+v", msgs)
	}
	env.clock.Add(30 * time.Second)
	if err := n.Notify(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, err := env.slack.WaitMessages(ctx, want)
	return err
}

// TestActionWaitsForTheGroupMessage: a pending failover published while
// its alert's group waits out group_wait (no Slack message yet) is not
// lost: its Approve button reaches the thread once the message is posted.
func TestActionWaitsForTheGroupMessage(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	act := &wire.Action{ID: "act-early", Cluster: "default", Fingerprint: "fpA", Kind: "switchover", Decision: "pending_approval",
		From: "db-1", To: "db-2", Nonce: "n0nce", Reason: "waiting for approval", At: env.clock.Now()}
	data, err := wire.EncodeAction(act)
	if err != nil {
		t.Fatal(err)
	}
	if err := publishDuringGroupWait(t, ctx, env, wire.ActionSubject("default"), data, act.ID, 2); err != nil {
		t.Fatalf("the early record never reached the thread: %v", err)
	}
	_, replies := topLevel(env.slack.Current())
	if len(replies) != 1 || !strings.Contains(string(replies[0].Blocks), ActionApprove) || !strings.Contains(string(replies[0].Blocks), "n0nce") {
		t.Fatalf("thread: %+v", replies)
	}
}

// TestAckWaitsForTheGroupMessage: an acknowledgement made before its
// group's message is posted (by phone during group_wait, or a press racing
// the post's answer) is not lost: the message shows it once posted.
func TestAckWaitsForTheGroupMessage(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	ack := &wire.Ack{ID: "ack-early", Fingerprint: "fpA", Cluster: "default", Action: wire.AckAcknowledge,
		By: "U42", Via: "phone", At: env.clock.Now()}
	data, err := wire.EncodeAck(ack)
	if err != nil {
		t.Fatal(err)
	}
	// The post, then the ack's update of it and its thread reply.
	if err := publishDuringGroupWait(t, ctx, env, wire.AckSubject("default"), data, ack.ID, 3); err != nil {
		t.Fatalf("the early ack never reached Slack: %v", err)
	}
	top, replies := topLevel(env.slack.Current())
	if len(top) != 1 || !strings.Contains(top[0].BlockText(), "Acknowledged by <@U42>") {
		t.Fatalf("message: %+v", top)
	}
	if len(replies) != 1 || !strings.Contains(replies[0].Text, "Acknowledged by <@U42> via phone") {
		t.Fatalf("thread: %+v", replies)
	}
}

func TestAckAndActionText(t *testing.T) {
	for _, tc := range []struct {
		ack  wire.Ack
		want string
	}{
		{wire.Ack{Action: wire.AckAcknowledge, By: "U1", Via: "slack"}, "Acknowledged by <@U1>"},
		{wire.Ack{Action: wire.AckAcknowledge, By: "alice", Via: "phone"}, "Acknowledged by alice via phone"},
		{wire.Ack{Action: wire.AckSilence, By: "U1", Until: time.Unix(1700000000, 0)}, "Silenced by <@U1> until <!date^1700000000"},
		{wire.Ack{Action: wire.AckResolve, By: "U1"}, "Marked resolved by <@U1>"},
		{wire.Ack{Action: wire.AckApprove, By: "U1"}, "Failover approved by <@U1>"},
	} {
		if got := AckText(&tc.ack); !strings.Contains(got, tc.want) {
			t.Errorf("AckText(%+v) = %q, want %q", tc.ack, got, tc.want)
		}
	}
	got := ActionText(&wire.Action{Kind: "switchover", Decision: "pending_approval", From: "a", To: "b", Reason: "primary <down>"})
	if !strings.Contains(got, "Switchover pending approval: a → b — primary &lt;down&gt;") {
		t.Errorf("ActionText = %q", got)
	}
}
