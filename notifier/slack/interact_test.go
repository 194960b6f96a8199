package slack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/inhibit"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/nats-io/nats.go/jetstream"
)

const signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"

type buttonsEnv struct {
	*incidentsEnv
	n        *Incidents
	silences *silence.Store
	url      string
	msgTS    string
	channel  string
	group    string
}

func newButtonsEnv(t *testing.T, ctx context.Context) *buttonsEnv {
	t.Helper()
	env := newIncidentsEnv(t)
	n := env.replica(t, "r1", nil)
	sil, err := silence.Open(ctx, env.js, 1, env.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewInteractions(signingSecret, env.js, env.log, sil, env.clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	startThreads(t, ctx, env.js, n)

	if err := n.Notify(ctx, alertOf("fpA", wire.StateFiring, env.clock.Now(), 12.3)); err != nil {
		t.Fatal(err)
	}
	e, _, err := env.log.Get(ctx, groupKeyOf(t, env, "fpA"))
	if err != nil || e == nil {
		t.Fatalf("no group entry: %v", err)
	}
	return &buttonsEnv{incidentsEnv: env, n: n, silences: sil, url: srv.URL, msgTS: e.TS, channel: e.ChannelID, group: e.GroupKey}
}

func groupKeyOf(t *testing.T, env *incidentsEnv, fp string) string {
	t.Helper()
	keys, err := env.log.Groups(context.Background(), fp)
	if err != nil || len(keys) != 1 {
		t.Fatalf("groups of %s: %v %v", fp, keys, err)
	}
	return keys[0]
}

func (b *buttonsEnv) press(t *testing.T, ctx context.Context, action string, secret string, ts time.Time) int {
	t.Helper()
	body := slacktest.ButtonPress{UserID: "U123", UserName: "alice", ChannelID: b.channel, MessageTS: b.msgTS, ActionID: action, Value: b.group}.Body()
	status, _, err := slacktest.Post(ctx, b.url, secret, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

func acksIn(t *testing.T, ctx context.Context, js jetstream.JetStream) []*wire.Ack {
	t.Helper()
	s, err := js.Stream(ctx, bus.AcksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*wire.Ack
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		a, err := wire.DecodeAck(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestAcknowledgeButton(t *testing.T) {
	ctx := testCtx(t)
	b := newButtonsEnv(t, ctx)
	if st := b.press(t, ctx, ActionAcknowledge, signingSecret, b.clock.Now()); st != http.StatusOK {
		t.Fatalf("status %d", st)
	}
	acks := acksIn(t, ctx, b.js)
	if len(acks) != 1 || acks[0].Action != wire.AckAcknowledge || acks[0].By != "U123" || acks[0].Fingerprint != "fpA" || acks[0].Via != "slack" {
		t.Fatalf("acks in MCIV_ACKS: %+v", acks)
	}
	// post, update, reply
	msgs, err := b.slack.WaitMessages(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	top, replies := topLevel(b.slack.Current())
	if !strings.Contains(top[0].BlockText(), "Acknowledged by <@U123>") || strings.Contains(top[0].BlockText(), "\nAcknowledge\n") {
		t.Errorf("the message after the ack:\n%s", top[0].BlockText())
	}
	if len(replies) != 1 || !strings.Contains(replies[0].Text, "Acknowledged by <@U123>") {
		t.Errorf("thread: %+v (all %d)", replies, len(msgs))
	}
}

func TestSilenceButtonSilencesTheNextNotification(t *testing.T) {
	ctx := testCtx(t)
	b := newButtonsEnv(t, ctx)
	if st := b.press(t, ctx, ActionSilence+"4h", signingSecret, b.clock.Now()); st != http.StatusOK {
		t.Fatalf("status %d", st)
	}
	acks := acksIn(t, ctx, b.js)
	if len(acks) != 1 || acks[0].Action != wire.AckSilence || !acks[0].Until.Equal(b.clock.Now().Add(4*time.Hour)) {
		t.Fatalf("acks: %+v", acks)
	}
	all, err := b.silences.List(ctx)
	if err != nil || len(all) != 1 || !all[0].EndsAt.Equal(b.clock.Now().Add(4*time.Hour)) {
		t.Fatalf("silences: %+v %v", all, err)
	}
	if _, err := b.slack.WaitMessages(ctx, 2); err != nil { // post, reply "Silenced"
		t.Fatal(err)
	}
	_, replies := topLevel(b.slack.Current())
	if len(replies) != 1 || !strings.Contains(replies[0].Text, "Silenced by <@U123>") {
		t.Errorf("thread: %+v", replies)
	}
	// The next firing of the group is muted.
	m := inhibit.NewMuter(nil, b.silences, b.log)
	b.clock.Add(time.Minute)
	reason, err := m.Mute(ctx, alertOf("fpA2", wire.StateFiring, b.clock.Now(), 30))
	if err != nil || !strings.HasPrefix(reason, "silenced by slack-") {
		t.Errorf("next alert of the group: muted %q, %v", reason, err)
	}
	b.clock.Add(5 * time.Hour)
	if reason, _ := m.Mute(ctx, alertOf("fpA2", wire.StateFiring, b.clock.Now(), 30)); reason != "" {
		t.Errorf("after the silence ended: muted %q", reason)
	}
}

func TestForgedOrStaleButtonPressChangesNothing(t *testing.T) {
	ctx := testCtx(t)
	b := newButtonsEnv(t, ctx)
	for name, tc := range map[string]struct {
		secret string
		ts     time.Time
	}{
		"bad signature": {"not-the-secret", b.clock.Now()},
		"stale":         {signingSecret, b.clock.Now().Add(-6 * time.Minute)},
		"future":        {signingSecret, b.clock.Now().Add(6 * time.Minute)},
	} {
		if st := b.press(t, ctx, ActionSilence+"1h", tc.secret, tc.ts); st != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, st)
		}
	}
	// An unsigned request too.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.url, strings.NewReader("payload={}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", resp.StatusCode)
	}
	if acks := acksIn(t, ctx, b.js); len(acks) != 0 {
		t.Errorf("acks published: %+v", acks)
	}
	if all, _ := b.silences.List(ctx); len(all) != 0 {
		t.Errorf("silences created: %+v", all)
	}
	if n := len(b.slack.Messages()); n != 1 {
		t.Errorf("%d Slack calls, want only the original post", n)
	}
}

func TestFailoverActionInThread(t *testing.T) {
	ctx := testCtx(t)
	b := newButtonsEnv(t, ctx)
	act := &wire.Action{ID: "act-1", Cluster: "default", Fingerprint: "fpA", Kind: "failover", Decision: "refused",
		Safeguard: "replication_lag", From: "db-1", To: "db-2", Reason: "replica db-2 is 40s behind", At: b.clock.Now()}
	data, err := wire.EncodeAction(act)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a duplicate publish is deduplicated by id
		if _, err := b.js.Publish(ctx, wire.ActionSubject("default"), data, jetstream.WithMsgID(act.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.slack.WaitMessages(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, replies := topLevel(b.slack.Current())
	if len(replies) != 1 || !strings.Contains(replies[0].Text, "Failover refused: db-1 → db-2") || !strings.Contains(replies[0].Text, "replication_lag") {
		t.Errorf("thread: %+v", replies)
	}
}

func TestApproveFailoverButton(t *testing.T) {
	ctx := testCtx(t)
	b := newButtonsEnv(t, ctx)
	act := &wire.Action{ID: "act-approve", Cluster: "default", Fingerprint: "fpA", Kind: "switchover", Decision: "pending_approval",
		From: "db-1", To: "db-2", Reason: "switching over default from db-1 to db-2: p99 12x baseline", At: b.clock.Now()}
	data, err := wire.EncodeAction(act)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.Publish(ctx, wire.ActionSubject("default"), data, jetstream.WithMsgID(act.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.slack.WaitMessages(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, replies := topLevel(b.slack.Current())
	if len(replies) != 1 || !strings.Contains(replies[0].BlockText(), "Approve failover") || !strings.Contains(string(replies[0].Blocks), ActionApprove) {
		t.Fatalf("the pending failover has no approve button in the thread: %+v", replies)
	}
	pressApprove := func(secret string) int {
		body := slacktest.ButtonPress{UserID: "U777", ChannelID: b.channel, MessageTS: replies[0].TS, ActionID: ActionApprove, Value: "fpA default"}.Body()
		st, _, err := slacktest.Post(ctx, b.url, secret, b.clock.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := pressApprove("forged"); st != http.StatusUnauthorized {
		t.Fatalf("forged approval: status %d", st)
	}
	if acks := acksIn(t, ctx, b.js); len(acks) != 0 {
		t.Fatalf("a forged approval published %+v", acks)
	}
	if st := pressApprove(signingSecret); st != http.StatusOK {
		t.Fatalf("approval: status %d", st)
	}
	acks := acksIn(t, ctx, b.js)
	if len(acks) != 1 || acks[0].Action != wire.AckApprove || acks[0].Fingerprint != "fpA" || acks[0].Cluster != "default" || acks[0].By != "U777" {
		t.Fatalf("acks: %+v", acks)
	}
}
