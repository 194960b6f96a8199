package slack

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/lab/storelab"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/mciv/mciv/notifier/slack/slacktest"
)

// TestSilenceButtonOnAFullStore: with the silences bucket full, a press of
// Silence answers 200 and tells the presser, in a message only they see,
// that the store is full and which bucket; nothing is silenced. Once
// there is room again the same button works.
func TestSilenceButtonOnAFullStore(t *testing.T) {
	ctx := testCtx(t)
	b := newButtonsEnv(t, ctx)
	if _, err := storelab.Fill(ctx, b.js, silence.Bucket); err != nil {
		t.Fatal(err)
	}
	press := func(trigger string) int {
		body := slacktest.ButtonPress{UserID: "U123", UserName: "alice", ChannelID: b.channel, MessageTS: b.msgTS,
			ActionID: ActionSilence + "1h", Value: b.group, TriggerID: trigger, ResponseURL: b.slack.ResponseURL()}.Body()
		status, _, err := slacktest.Post(ctx, b.url, signingSecret, b.clock.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return status
	}
	if st := press("t1"); st != http.StatusOK {
		t.Fatalf("press on a full store answered %d, want 200 with a message to the user", st)
	}
	rs := b.slack.Responses()
	if len(rs) != 1 || rs[0].ResponseType != "ephemeral" || rs[0].ReplaceOriginal ||
		!strings.Contains(rs[0].Text, "full") || !strings.Contains(rs[0].Text, silence.Bucket) || !strings.Contains(rs[0].Text, "Silence 1h") {
		t.Fatalf("responses to the presser: %+v", rs)
	}
	if acks := acksIn(t, ctx, b.js); len(acks) != 0 {
		t.Errorf("a failed silence published acks: %+v", acks)
	}
	if err := storelab.Empty(ctx, b.js, silence.Bucket); err != nil {
		t.Fatal(err)
	}
	if st := press("t2"); st != http.StatusOK {
		t.Fatalf("press after room was made answered %d", st)
	}
	all, err := b.silences.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range all {
		if strings.HasPrefix(s.ID, "slack-") {
			n++
		}
	}
	if n != 1 || len(b.slack.Responses()) != 1 {
		t.Errorf("after room was made: %d silences from Slack, %d responses; want 1 and still 1", n, len(b.slack.Responses()))
	}
}
