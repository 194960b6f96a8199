package slack

import (
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/silence"
)

func TestCLISilenceAndItsExpiryReplyInTheThread(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	n := env.replica(t, "r1", nil)
	sil, err := silence.Open(ctx, env.js, 1, env.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, alertOf("fpA", wire.StateFiring, env.clock.Now(), 12.3)); err != nil {
		t.Fatal(err)
	}
	// A silence of another host, and one made with a Slack button: no reply.
	for _, s := range []silence.Silence{
		{Matchers: labels.Matchers{labels.MustParse("host=db-9")}, CreatedBy: "cli:bob"},
		{Matchers: labels.Matchers{labels.MustParse("host=db-1")}, CreatedBy: "slack:U123"},
	} {
		s.StartsAt, s.EndsAt = env.clock.Now(), env.clock.Now().Add(time.Hour)
		if _, err := sil.Add(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	s, err := sil.Add(ctx, silence.Silence{Matchers: labels.Matchers{labels.MustParse("host=db-1")}, StartsAt: env.clock.Now(),
		EndsAt: env.clock.Now().Add(2 * time.Hour), CreatedBy: "cli:alice", Comment: "kernel upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // twice: replies once
		if err := n.SilenceReplies(ctx, sil); err != nil {
			t.Fatal(err)
		}
	}
	env.clock.Add(time.Minute)
	if err := sil.Expire(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	env.clock.Add(time.Second)
	for range 2 {
		if err := n.SilenceReplies(ctx, sil); err != nil {
			t.Fatal(err)
		}
	}
	_, replies := topLevel(env.slack.Current())
	if len(replies) != 2 || !strings.Contains(replies[0].Text, "Silenced by cli:alice") || !strings.Contains(replies[0].Text, "kernel upgrade") ||
		!strings.Contains(replies[1].Text, "Silence "+s.ID) || !strings.Contains(replies[1].Text, "ended") {
		var texts []string
		for _, r := range replies {
			texts = append(texts, r.Text)
		}
		t.Fatalf("thread replies %q", texts)
	}
}
