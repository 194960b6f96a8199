package notifier_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/inhibit"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/slack/slacktest"
)

// These tests run the grouped Slack integration (slack.Incidents) under
// real dispatchers on one JetStream.

func newIncidents(t *testing.T, srv *slacktest.Server, log *nflog.Log, replica string) *slack.Incidents {
	t.Helper()
	n, err := slack.NewIncidents(slack.IncidentsConfig{
		Config:      slack.Config{Token: slackToken, Channel: "#oncall", APIURL: srv.URL(), RetryBackoff: 10 * time.Millisecond},
		Log:         log,
		Replica:     replica,
		ClaimTTL:    500 * time.Millisecond,
		ChannelRate: 1000,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func split(msgs []slacktest.Message) (top, replies int) {
	for _, m := range msgs {
		if m.Method != "chat.postMessage" {
			continue
		}
		if m.ThreadTS == "" {
			top++
		} else {
			replies++
		}
	}
	return top, replies
}

// killedAfterPosting delivers, then hangs until the dispatcher is stopped
// (as a process killed before it could acknowledge).
type killedAfterPosting struct {
	notifier.Notifier
	posted chan struct{}
}

func (k *killedAfterPosting) Notify(ctx context.Context, a *wire.Alert) error {
	if err := k.Notifier.Notify(ctx, a); err != nil {
		return err
	}
	close(k.posted)
	<-ctx.Done()
	return ctx.Err()
}

func TestNotifierKilledBetweenPostingAndAckingDoesNotPostAgain(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	srv := slacktest.New(t, slackToken)
	log, err := nflog.Open(ctx, env.js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seq := env.publish(ctx, alert("RuleA", "db-1"))

	k := &killedAfterPosting{Notifier: newIncidents(t, srv, log, "host-1"), posted: make(chan struct{})}
	r1 := start(t, ctx, env.js, fast, k)
	select {
	case <-k.posted:
	case <-ctx.Done():
		t.Fatal("never posted")
	}
	r1.stop() // killed: the message was never acknowledged

	r2 := start(t, ctx, env.js, fast, newIncidents(t, srv, log, "host-1"))
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	r2.stop()
	if msgs := srv.Messages(); len(msgs) != 1 {
		t.Fatalf("Slack got %d messages, want the one posted before the kill", len(msgs))
	}
}

func TestTwoReplicasPostOneMessagePerGroupState(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	srv := slacktest.New(t, slackToken)
	log, err := nflog.Open(ctx, env.js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Two durables: each replica gets every alert, the worst case (one
	// shared durable splits the alerts and only redeliveries race).
	cfgA, cfgB := fast, fast
	cfgA.Durable, cfgB.Durable = "replica-a", "replica-b"
	ra := start(t, ctx, env.js, cfgA, newIncidents(t, srv, log, "a"))
	rb := start(t, ctx, env.js, cfgB, newIncidents(t, srv, log, "b"))

	a := alert("RuleA", "db-1")
	seq := env.publish(ctx, a)
	env.waitAcked(ctx, "replica-a", seq)
	env.waitAcked(ctx, "replica-b", seq)
	r := *a
	r.State, r.At, r.EndsAt = wire.StateResolved, a.At.Add(time.Second), a.At.Add(time.Second)
	seq = env.publish(ctx, &r)
	env.waitAcked(ctx, "replica-a", seq)
	env.waitAcked(ctx, "replica-b", seq)
	ra.stop()
	rb.stop()

	msgs := srv.Messages()
	top, replies := split(msgs)
	if top != 1 || replies != 1 || len(msgs) != 3 {
		t.Fatalf("two replicas: %d calls (%d top-level, %d replies), want 3: post, update, reply", len(msgs), top, replies)
	}
}

func TestSilencedAlertIsAckedNotDelivered(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	srv := slacktest.New(t, slackToken)
	log, err := nflog.Open(ctx, env.js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sil, err := silence.Open(ctx, env.js, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sil.Add(ctx, silence.Silence{Matchers: labels.Matchers{labels.MustParse("host=db-1")}, EndsAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cfg := fast
	cfg.Muter = inhibit.NewMuter(nil, sil, log)
	r := start(t, ctx, env.js, cfg, newIncidents(t, srv, log, "a"))
	seq := env.publish(ctx, alert("RuleA", "db-1"))
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	seq = env.publish(ctx, alert("RuleA", "db-2"))
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	if got := r.counter("mciv_notifier_messages_total", "outcome", "muted"); got != 1 {
		t.Errorf("muted = %v, want 1", got)
	}
	r.stop()
	msgs := srv.Messages()
	if len(msgs) != 1 || msgs[0].Text == "" || !strings.Contains(msgs[0].Text, "db-2") {
		t.Errorf("Slack got %+v, want only db-2", msgs)
	}
}

func TestKilledAfterSlackAcceptedTheFirstPostBeforeItsTSWasStored(t *testing.T) {
	// By channel ID, and by channel name (the notifier's first message to
	// it ever: its ID comes from conversations.list, paged through a
	// workspace of many channels).
	for _, channel := range []string{"C0ONCALL01", "#oncall"} {
		t.Run(channel, func(t *testing.T) { killedAfterFirstPost(t, channel) })
	}
}

func killedAfterFirstPost(t *testing.T, channel string) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	srv := slacktest.New(t, slackToken)
	var others []string
	for i := range 450 {
		others = append(others, fmt.Sprintf("a-team-%03d", i)) // sorted before oncall
	}
	srv.AddChannels(others...)
	log, err := nflog.Open(ctx, env.js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inc := func() *slack.Incidents {
		n, err := slack.NewIncidents(slack.IncidentsConfig{
			Config:      slack.Config{Token: slackToken, Channel: channel, APIURL: srv.URL(), RetryBackoff: 10 * time.Millisecond},
			Log:         log,
			Replica:     "host-1",
			ChannelRate: 1000,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Slack takes the first post, and the notifier dies before it reads
	// the answer: the ts never reaches the notification log.
	srv.LoseAnswers("chat.postMessage", 1)
	seq := env.publish(ctx, alert("RuleA", "db-1"))
	r1 := start(t, ctx, env.js, fast, inc())
	if _, err := srv.WaitMessages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	r1.stop()
	if e, _, err := log.Get(ctx, ""); err == nil && e != nil && e.TS != "" {
		t.Fatal("the ts was stored; the test did not kill at the right moment")
	}

	r2 := start(t, ctx, env.js, fast, inc())
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	r2.stop()
	if top, _ := split(srv.Messages()); top != 1 || len(srv.Current()) != 1 {
		t.Fatalf("after the restart Slack has %d top-level posts (%d messages), want exactly one", top, len(srv.Current()))
	}
	var methods []string
	for _, rq := range srv.Requests() {
		methods = append(methods, rq.Method)
	}
	if !slices.Contains(methods, "conversations.history") {
		t.Errorf("the restarted notifier did not look the message up: %v", methods)
	}
	lists := 0
	for _, m := range methods {
		if m == "conversations.list" {
			lists++
		}
	}
	if strings.HasPrefix(channel, "#") && lists < 2 {
		t.Errorf("the channel name was resolved with %d conversations.list calls, want the pages up to #oncall (2 or more)", lists)
	}
}
