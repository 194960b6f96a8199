package slacktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

const token = "xoxb-test-token"

func client(s *Server, tok string) *slack.Client {
	return slack.New(tok, slack.OptionAPIURL(s.URL()))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPostMessageIsRecorded(t *testing.T) {
	s := New(t, token)
	ctx := ctxT(t)
	api := client(s, token)
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, "Header", false, false)),
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*body*", false, false),
			[]*slack.TextBlockObject{slack.NewTextBlockObject(slack.MarkdownType, "field", false, false)}, nil),
	}
	ch, ts, err := api.PostMessageContext(ctx, "#oncall", slack.MsgOptionText("fallback", false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		t.Fatal(err)
	}
	if ts != "1700000000.000100" || !strings.HasPrefix(ch, "C") {
		t.Fatalf("channel %q ts %q", ch, ts)
	}
	// A reply in the thread of the first message, to the channel by ID.
	_, ts2, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("reply", false), slack.MsgOptionTS(ts))
	if err != nil {
		t.Fatal(err)
	}
	if ts2 == ts {
		t.Fatalf("second message got the same ts %s", ts)
	}
	msgs, err := s.WaitMessages(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.Method != "chat.postMessage" || m.Channel != "#oncall" || m.ChannelID != ch || m.Text != "fallback" || m.TS != ts || m.ThreadTS != "" {
		t.Fatalf("recorded %+v", m)
	}
	if got := m.BlockText(); got != "Header\n*body*\nfield" {
		t.Fatalf("BlockText = %q", got)
	}
	if r := msgs[1]; r.ChannelID != ch || r.ThreadTS != ts || r.Text != "reply" || r.BlockText() != "" {
		t.Fatalf("reply recorded as %+v", r)
	}
}

func TestAuth(t *testing.T) {
	s := New(t, token)
	ctx := ctxT(t)
	if resp, err := client(s, token).AuthTestContext(ctx); err != nil || resp.UserID == "" || resp.TeamID == "" {
		t.Fatalf("auth.test = %+v, %v", resp, err)
	}
	_, err := client(s, "xoxb-wrong").AuthTestContext(ctx)
	if err == nil || err.Error() != "invalid_auth" {
		t.Fatalf("auth.test with a wrong token: %v", err)
	}
	_, _, err = client(s, "").PostMessageContext(ctx, "#c", slack.MsgOptionText("x", false))
	if err == nil || err.Error() != "not_authed" {
		t.Fatalf("post without a token: %v", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d messages recorded from unauthenticated calls", n)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[1].Error != "invalid_auth" || reqs[2].Method != "chat.postMessage" {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestJSONBodyWithBearer(t *testing.T) {
	s := New(t, token)
	body := `{"channel":"C0123456","text":"hi","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"json"}}]}`
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, s.URL()+"chat.postMessage", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].ChannelID != "C0123456" || msgs[0].BlockText() != "json" {
		t.Fatalf("recorded %+v", msgs)
	}
}

func TestUpdate(t *testing.T) {
	s := New(t, token)
	ctx := ctxT(t)
	api := client(s, token)
	ch, ts, err := api.PostMessageContext(ctx, "#oncall", slack.MsgOptionText("firing", false))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText("resolved", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, ch, "1.000000", slack.MsgOptionText("x", false)); err == nil || err.Error() != "message_not_found" {
		t.Fatalf("update of an unknown message: %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 2 || msgs[1].Method != "chat.update" || msgs[1].TS != ts || msgs[1].Text != "resolved" {
		t.Fatalf("messages %+v", msgs)
	}
	cur := s.Current()
	if len(cur) != 1 || cur[0].Text != "resolved" || cur[0].TS != ts || cur[0].Method != "chat.postMessage" {
		t.Fatalf("current %+v", cur)
	}
}

func TestFailNext(t *testing.T) {
	s := New(t, token)
	ctx := ctxT(t)
	api := client(s, token)

	s.FailNext(1, http.StatusTooManyRequests, 1500*time.Millisecond)
	_, _, err := api.PostMessageContext(ctx, "#c", slack.MsgOptionText("a", false))
	rl, ok := errors.AsType[*slack.RateLimitedError](err)
	if !ok || rl.RetryAfter != 2*time.Second {
		t.Fatalf("rate limited post: %v (%T)", err, err)
	}

	s.FailNext(2, http.StatusInternalServerError, 0)
	for range 2 {
		_, _, err = api.PostMessageContext(ctx, "#c", slack.MsgOptionText("a", false))
		if sc, ok := errors.AsType[slack.StatusCodeError](err); !ok || sc.Code != http.StatusInternalServerError {
			t.Fatalf("failed post: %v (%T)", err, err)
		}
	}
	if _, _, err := api.PostMessageContext(ctx, "#c", slack.MsgOptionText("a", false)); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Fatalf("%d messages recorded, want only the one that succeeded", n)
	}
	var statuses []int
	for _, r := range s.Requests() {
		statuses = append(statuses, r.Status)
	}
	if want := []int{429, 500, 500, 200}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses %v, want %v", statuses, want)
	}
}

func TestRejectsWhatSlackRejects(t *testing.T) {
	s := New(t, token)
	ctx := ctxT(t)
	api := client(s, token)
	long := strings.Repeat("x", 151)
	for name, opts := range map[string][]slack.MsgOption{
		"no text":     {slack.MsgOptionText("", false)},
		"long header": {slack.MsgOptionBlocks(slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, long, false, false)))},
		"empty field": {slack.MsgOptionBlocks(slack.NewSectionBlock(nil, []*slack.TextBlockObject{slack.NewTextBlockObject(slack.MarkdownType, "", false, false)}, nil))},
	} {
		if _, _, err := api.PostMessageContext(ctx, "#c", opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := api.PostMessageContext(ctx, "", slack.MsgOptionText("x", false)); err == nil || err.Error() != "channel_not_found" {
		t.Errorf("no channel: %v", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d rejected messages recorded", n)
	}
}

func TestWaitMessages(t *testing.T) {
	s := New(t, token)
	ctx := ctxT(t)
	api := client(s, token)
	done := make(chan error, 1)
	go func() {
		_, err := s.WaitMessages(ctx, 2)
		done <- err
	}()
	for range 2 {
		if _, _, err := api.PostMessageContext(ctx, "#c", slack.MsgOptionText("x", false)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	msgs, err := s.WaitMessages(short, 3)
	if !errors.Is(err, context.DeadlineExceeded) || len(msgs) != 2 {
		t.Fatalf("WaitMessages for more than arrive: %d messages, %v", len(msgs), err)
	}
}

func TestExternalUploadWithSlackGo(t *testing.T) {
	srv := New(t, "xoxb-upload")
	api := slack.New("xoxb-upload", slack.OptionAPIURL(srv.URL()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data := []byte("\x89PNG\r\n\x1a\nfake")
	f, err := api.UploadFileContext(ctx, slack.UploadFileParameters{
		Filename: "chart.png", FileSize: len(data), Reader: bytes.NewReader(data),
		Title: "chart", Channel: "C0NCALL", ThreadTimestamp: "1700000000.000100",
	})
	if err != nil {
		t.Fatal(err)
	}
	files, err := srv.WaitFiles(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := files[0]
	if got.ID != f.ID || !bytes.Equal(got.Data, data) || got.ChannelID != "C0NCALL" || got.ThreadTS != "1700000000.000100" || got.Title != "chart" || got.Filename != "chart.png" {
		t.Errorf("shared file = %+v (summary %+v)", got, f)
	}
	// Completing an upload whose bytes never arrived fails.
	if _, err := api.CompleteUploadExternalContext(ctx, slack.CompleteUploadExternalParameters{Files: []slack.FileSummary{{ID: "Fnope"}}, Channel: "C0NCALL"}); err == nil {
		t.Error("completing an unknown upload succeeded")
	}
}

func TestSignMatchesSlackGoVerifier(t *testing.T) {
	body := ButtonPress{UserID: "U1", ChannelID: "C1", MessageTS: "1.2", ActionID: "ack"}.Body()
	now := time.Now()
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("X-Slack-Signature", Sign("s3cret", now, body))
	v, err := slack.NewSecretsVerifier(h, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = v.Write(body)
	if err := v.Ensure(); err != nil {
		t.Errorf("slack-go rejects our signature: %v", err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		t.Fatal(err)
	}
	if cb.Type != slack.InteractionTypeBlockActions || cb.User.ID != "U1" || len(cb.ActionCallback.BlockActions) != 1 || cb.ActionCallback.BlockActions[0].ActionID != "ack" || cb.Container.MessageTs != "1.2" {
		t.Errorf("slack-go decodes the payload as %+v", cb)
	}
}

func TestSetDown(t *testing.T) {
	s := New(t, "xoxb-down")
	api := client(s, "xoxb-down")
	s.SetDown(http.StatusServiceUnavailable)
	for range 3 {
		if _, _, err := api.PostMessageContext(ctxT(t), "#c", slack.MsgOptionText("x", false)); err == nil {
			t.Fatal("posted while down")
		}
	}
	s.SetDown(0)
	if _, _, err := api.PostMessageContext(ctxT(t), "#c", slack.MsgOptionText("x", false)); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

func TestHistoryReturnsMetadata(t *testing.T) {
	s := New(t, "xoxb-h")
	api := client(s, "xoxb-h")
	md := slack.SlackMetadata{EventType: "mciv_alert_group", EventPayload: map[string]any{"group_key": "k"}}
	ch, ts, err := api.PostMessageContext(ctxT(t), "#oncall", slack.MsgOptionText("x", false), slack.MsgOptionMetadata(md))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.PostMessageContext(ctxT(t), ch, slack.MsgOptionText("reply", false), slack.MsgOptionTS(ts)); err != nil {
		t.Fatal(err)
	}
	resp, err := api.GetConversationHistoryContext(ctxT(t), &slack.GetConversationHistoryParameters{ChannelID: ch, IncludeAllMetadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Messages) != 1 || resp.Messages[0].Timestamp != ts || resp.Messages[0].Metadata.EventPayload["group_key"] != "k" {
		t.Fatalf("history %+v", resp.Messages)
	}
	if _, err := api.GetConversationHistoryContext(ctxT(t), &slack.GetConversationHistoryParameters{ChannelID: "#oncall"}); err == nil {
		t.Error("history by channel name accepted; Slack wants an ID")
	}
}

func TestLoseAnswers(t *testing.T) {
	s := New(t, "xoxb-l")
	api := client(s, "xoxb-l")
	s.LoseAnswers("chat.postMessage", 1)
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	if _, _, err := api.PostMessageContext(ctx, "#c", slack.MsgOptionText("x", false)); err == nil {
		t.Fatal("the lost answer arrived")
	}
	if n := len(s.Messages()); n != 1 {
		t.Fatalf("%d messages, want the one Slack took", n)
	}
}
