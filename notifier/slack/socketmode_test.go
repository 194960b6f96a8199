package slack

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/escalation"
	"github.com/mciv/mciv/notifier/phone/twilio"
	"github.com/mciv/mciv/notifier/phone/twilio/twiliotest"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"gopkg.in/yaml.v3"
)

const appToken = "xapp-1-A0000000001-secret"

// socketEnv is the buttons environment plus a Socket Mode connection to
// the fake and a phone escalation of the alert fpA fed by MCIV_ACKS.
type socketEnv struct {
	*buttonsEnv
	h   *Interactions
	esc *escalation.Engine
	sw  *fakeSwitch
}

type fakeSwitch struct {
	mu         sync.Mutex
	paused     bool
	by, reason string
}

func (f *fakeSwitch) Paused(context.Context) (bool, string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused, f.by, f.reason, nil
}

func (f *fakeSwitch) Pause(_ context.Context, by, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused, f.by, f.reason = true, by, reason
	return nil
}

func newSocketEnv(t *testing.T, ctx context.Context, allowed ...string) *socketEnv {
	t.Helper()
	b := newButtonsEnv(t, ctx)
	h, err := NewInteractions(signingSecret, b.js, b.log, b.silences, b.clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.AllowUsers(allowed)
	env := &socketEnv{buttonsEnv: b, h: h, sw: &fakeSwitch{}}

	// The alert's phone escalation, stopped by an Ack on MCIV_ACKS.
	var oc escalation.Config
	if err := yaml.Unmarshal([]byte(`
people: [{name: alice, phone: "+15551230001", slack: U123}]
rotations: [{name: primary, people: [alice], handoff: "2026-01-05 09:00", length: 168h}]
policies: [{name: all, match: {cluster: default}, steps: [{after: 0s, call: [primary]}, {after: 5m, call: [primary]}]}]
`), &oc); err != nil {
		t.Fatal(err)
	}
	fake := twiliotest.Start(t, "AC0000000000000000000000000000000b", "tw-secret")
	prov, err := twilio.New(twilio.Options{
		Config:     twilio.Config{AccountSID: "AC0000000000000000000000000000000b", AuthToken: "tw-secret", From: "+15551230000", PublicURL: "http://127.0.0.1:1"},
		HTTPClient: fake.HTTPClient(),
	})
	if err != nil {
		t.Fatal(err)
	}
	env.esc, err = escalation.New(escalation.Options{Config: oc, Provider: prov, Cluster: "default", Now: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.esc.Notify(ctx, alertOf("fpA", wire.StateFiring, b.clock.Now(), 12.3)); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = env.esc.ConsumeAcks(runCtx, b.js, "") })
	b.slack.EnableSocketMode(appToken)
	sm, err := NewSocketMode(SocketModeOptions{AppToken: appToken, BotToken: token, APIURL: b.slack.URL(),
		Interactions: h, Failover: env.sw, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = sm.Run(runCtx) })
	t.Cleanup(func() {
		stop()
		wg.Wait()
	})
	if err := b.slack.WaitSocket(ctx); err != nil {
		t.Fatal(err)
	}
	return env
}

// stopped waits until fpA's escalation stopped or ctx ends.
func (e *socketEnv) stopped(ctx context.Context) bool {
	for {
		if st, ok := e.esc.Escalation("fpA"); ok && st.Stopped {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (e *socketEnv) pressOverSocket(t *testing.T, ctx context.Context, p slacktest.ButtonPress) {
	t.Helper()
	p.ChannelID, p.MessageTS, p.Value = e.channel, e.msgTS, e.group
	if _, err := e.slack.Press(ctx, p); err != nil {
		t.Fatal(err)
	}
}

func TestSocketModePressAcknowledgesAndStopsTheEscalation(t *testing.T) {
	ctx := testCtx(t)
	e := newSocketEnv(t, ctx, "U123")
	e.pressOverSocket(t, ctx, slacktest.ButtonPress{UserID: "U123", UserName: "alice", ActionID: ActionAcknowledge})
	if !e.stopped(ctx) {
		t.Fatal("the escalation did not stop after the press over the WebSocket")
	}
	acks := acksIn(t, ctx, e.js)
	if len(acks) != 1 || acks[0].Action != wire.AckAcknowledge || acks[0].By != "U123" || acks[0].Via != "slack" {
		t.Fatalf("acks: %+v", acks)
	}
	st, _ := e.esc.Escalation("fpA")
	if len(st.Calls) != 1 {
		t.Errorf("%d calls, want the first only", len(st.Calls))
	}
}

func TestSocketModeForgedOrUnlistedPressChangesNothing(t *testing.T) {
	ctx := testCtx(t)
	e := newSocketEnv(t, ctx, "U123")
	for _, p := range []slacktest.ButtonPress{
		{UserID: "U999", UserName: "mallory", ActionID: ActionAcknowledge},                        // not on the roster
		{UserID: "U123", UserName: "alice", ActionID: ActionAcknowledge, TeamID: "T0EVIL"},        // another workspace
		{UserID: "U123", UserName: "alice", ActionID: ActionSilence + "1h", AppID: "A0OTHERAPP1"}, // another app
	} {
		e.pressOverSocket(t, ctx, p)
	}
	// A last allowed press shows that the ones before were handled.
	e.pressOverSocket(t, ctx, slacktest.ButtonPress{UserID: "U123", UserName: "alice", ActionID: ActionAcknowledge, TriggerID: "last"})
	if !e.stopped(ctx) {
		t.Fatal("the allowed press did not stop the escalation")
	}
	acks := acksIn(t, ctx, e.js)
	if len(acks) != 1 || acks[0].By != "U123" || acks[0].Action != wire.AckAcknowledge {
		t.Fatalf("acks: %+v, want only the allowed press", acks)
	}
	if all, err := e.silences.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("silences %+v %v", all, err)
	}
}

func TestSlashCommandsOverSocketMode(t *testing.T) {
	ctx := testCtx(t)
	e := newSocketEnv(t, ctx, "U123")
	run := func(user, text string) string {
		t.Helper()
		raw, err := e.slack.Command(ctx, slacktest.SlashCommand{Command: CommandName, Text: text, UserID: user, UserName: "x", ChannelID: e.channel})
		if err != nil {
			t.Fatal(err)
		}
		var resp struct {
			ResponseType string `json:"response_type"`
			Text         string `json:"text"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatalf("%s: %s: %v", text, raw, err)
		}
		if user == "U123" && resp.ResponseType != "in_channel" {
			t.Errorf("%s: response_type %q", text, resp.ResponseType)
		}
		return resp.Text
	}
	if got := run("U123", "status"); !strings.Contains(got, "1 open incident") || !strings.Contains(got, e.group) || !strings.Contains(got, "failover armed") {
		t.Errorf("status: %q", got)
	}
	if got := run("U999", "ack "+e.group); !strings.Contains(got, "not on the on-call roster") {
		t.Errorf("ack by an unlisted user: %q", got)
	}
	if got := run("U123", "ack fpA"); !strings.Contains(got, "acknowledged") {
		t.Errorf("ack: %q", got)
	}
	if !e.stopped(ctx) {
		t.Fatal("/mciv ack did not stop the escalation")
	}
	if got := run("U123", "silence host=db-9 2h -- maintenance"); !strings.Contains(got, "silenced `host=db-9` for 2h0m0s") {
		t.Errorf("silence: %q", got)
	}
	if all, err := e.silences.List(ctx); err != nil || len(all) != 1 || all[0].CreatedBy != "slack:U123" {
		t.Errorf("silences %+v %v", all, err)
	}
	if got := run("U123", "failover pause db maintenance"); !strings.Contains(got, "Failover paused") {
		t.Errorf("failover: %q", got)
	}
	if got := run("U123", "status"); !strings.Contains(got, "failover paused by slack:U123 (db maintenance)") || !strings.Contains(got, "1 active silence") {
		t.Errorf("status after: %q", got)
	}
	if got := run("U123", "frobnicate"); !strings.HasPrefix(got, "Usage:") {
		t.Errorf("unknown: %q", got)
	}
}

func TestSlashCommandOverHTTP(t *testing.T) {
	ctx := testCtx(t)
	b := newButtonsEnv(t, ctx)
	h, err := NewInteractions(signingSecret, b.js, b.log, b.silences, b.clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.CommandHandler(nil))
	defer srv.Close()
	body := []byte(url.Values{"command": {CommandName}, "text": {"status"}, "user_id": {"U123"}, "team_id": {slacktest.TeamID}}.Encode())
	status, resp, err := slacktest.Post(ctx, srv.URL, signingSecret, b.clock.Now(), body)
	if err != nil || status != http.StatusOK || !strings.Contains(resp, "1 open incident") || !strings.Contains(resp, `"in_channel"`) {
		t.Fatalf("status %d %q %v", status, resp, err)
	}
	if status, _, _ := slacktest.Post(ctx, srv.URL, "forged", b.clock.Now(), body); status != http.StatusUnauthorized {
		t.Errorf("forged command: %d", status)
	}
}
