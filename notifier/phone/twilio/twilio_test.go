package twilio

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/notifier/phone"
	"github.com/mciv/mciv/notifier/phone/twilio/twiliotest"
)

const (
	sid   = "AC00000000000000000000000000000001"
	token = "secrettoken0123456789"
)

// recorder is a phone.EventHandler that records events.
type recorder struct {
	mu     sync.Mutex
	events []phone.Event
}

func (r *recorder) HandleCallEvent(_ context.Context, ev phone.Event) phone.Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return phone.Reply{Say: "Acknowledged by alice. Thank you."}
}

func (r *recorder) all() []phone.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]phone.Event(nil), r.events...)
}

// setup starts the fake Twilio and our callback endpoint.
func setup(t *testing.T) (*Provider, *twiliotest.Server, *recorder, *bytes.Buffer) {
	t.Helper()
	fake := twiliotest.Start(t, sid, token)
	rec := &recorder{}
	var logs bytes.Buffer
	var p *Provider
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.Handler(rec).ServeHTTP(w, r) }))
	t.Cleanup(ep.Close)
	var err error
	p, err = New(Options{
		Config:     Config{AccountSID: sid, AuthToken: token, From: "+15551230000", PublicURL: ep.URL + "/"},
		HTTPClient: fake.HTTPClient(),
		Logger:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, fake, rec, &logs
}

func TestCallGatherAndConfirm(t *testing.T) {
	p, fake, rec, logs := setup(t)
	id, err := p.Call(t.Context(), phone.CallRequest{
		To:     "+15551230001",
		Say:    "Critical. Disk full on host d b 1.",
		Gather: &phone.Gather{},
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := fake.Calls()
	if len(calls) != 1 || phone.CallID(calls[0].SID) != id {
		t.Fatalf("calls %+v, id %s", calls, id)
	}
	c := calls[0]
	if c.To != "+15551230001" || c.From != "+15551230000" || c.Timeout != "30" {
		t.Errorf("call %+v", c)
	}
	for _, want := range []string{
		`<Gather input="dtmf" numDigits="1" action="` + p.GatherURL() + `" method="POST" timeout="10">`,
		`<Say>Critical. Disk full on host d b 1.</Say>`,
		`<Say>` + phone.DefaultPrompt + `</Say></Gather>`,
		`<Say>` + phone.DefaultNoInput + `</Say></Response>`,
	} {
		if !strings.Contains(c.Twiml, want) {
			t.Errorf("TwiML %s\nlacks %s", c.Twiml, want)
		}
	}
	if c.StatusCallback != p.StatusURL() || strings.Join(c.StatusEvents, ",") != "initiated,ringing,answered,completed" {
		t.Errorf("status callback %q %v", c.StatusCallback, c.StatusEvents)
	}

	resp, err := fake.Press(t.Context(), c, "1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK || !strings.Contains(resp.Body, "<Say>Acknowledged by alice. Thank you.</Say><Hangup></Hangup>") {
		t.Errorf("gather answered %d %s", resp.Status, resp.Body)
	}
	resp, err = fake.SendStatus(t.Context(), c, "completed")
	if err != nil || resp.Status != http.StatusNoContent {
		t.Fatalf("status callback: %+v %v", resp, err)
	}
	ev := rec.all()
	if len(ev) != 2 ||
		ev[0] != (phone.Event{Kind: phone.EventDigits, CallID: id, Status: phone.StatusInProgress, Digits: "1", To: "+15551230001"}) ||
		ev[1] != (phone.Event{Kind: phone.EventStatus, CallID: id, Status: phone.StatusCompleted, To: "+15551230001", Duration: 42 * time.Second}) {
		t.Errorf("events %+v", ev)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the auth token is in the log:\n%s", logs)
	}
}

func TestWrongSignatureRefused(t *testing.T) {
	p, fake, rec, logs := setup(t)
	form := url.Values{"AccountSid": {sid}, "CallSid": {"CA1"}, "Digits": {"1"}, "CallStatus": {"in-progress"}}
	for name, sig := range map[string]string{
		"missing":      "",
		"forged":       "bm90IGEgc2lnbmF0dXJl",
		"other token":  twiliotest.Signature("anothertoken", p.GatherURL(), form),
		"other url":    twiliotest.Signature(token, p.GatherURL()+"?x=1", form),
		"other digits": twiliotest.Signature(token, p.GatherURL(), url.Values{"AccountSid": {sid}, "CallSid": {"CA1"}, "Digits": {"2"}, "CallStatus": {"in-progress"}}),
	} {
		resp, err := fake.Post(t.Context(), p.GatherURL(), form, sig)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusForbidden {
			t.Errorf("%s signature: answered %d, want 403", name, resp.Status)
		}
	}
	// Signed right but for another account.
	other := url.Values{"AccountSid": {"AC999"}, "CallSid": {"CA1"}, "Digits": {"1"}}
	if resp, _ := fake.Post(t.Context(), p.GatherURL(), other, twiliotest.Signature(token, p.GatherURL(), other)); resp.Status != http.StatusForbidden {
		t.Errorf("other account: answered %d, want 403", resp.Status)
	}
	if resp, _ := fake.Post(t.Context(), p.StatusURL(), form, "forged"); resp.Status != http.StatusForbidden {
		t.Errorf("status with a forged signature: answered %d", resp.Status)
	}
	if ev := rec.all(); len(ev) != 0 {
		t.Errorf("refused requests reached the handler: %+v", ev)
	}
	if !strings.Contains(logs.String(), "wrong Twilio signature") || strings.Contains(logs.String(), token) {
		t.Errorf("log:\n%s", logs)
	}
	// And the right signature is accepted.
	if resp, _ := fake.Post(t.Context(), p.GatherURL(), form, twiliotest.Signature(token, p.GatherURL(), form)); resp.Status != http.StatusOK {
		t.Errorf("valid signature: answered %d", resp.Status)
	}
}

func TestCallErrors(t *testing.T) {
	p, fake, _, _ := setup(t)
	fake.FailCalls(http.StatusBadRequest, 21211, "Invalid 'To' Phone Number")
	_, err := p.Call(t.Context(), phone.CallRequest{To: "+1", Say: "x"})
	if err == nil || !strings.Contains(err.Error(), "21211") || strings.Contains(err.Error(), token) {
		t.Errorf("Call = %v, want Twilio's error 21211 without the token", err)
	}
	if _, err := p.Call(t.Context(), phone.CallRequest{To: "+1"}); err == nil {
		t.Error("a call with nothing to say was placed")
	}
	if _, err := p.Call(t.Context(), phone.CallRequest{Say: "x"}); err == nil {
		t.Error("a call without a number was placed")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fake.FailCalls(0, 0, "")
	if _, err := p.Call(ctx, phone.CallRequest{To: "+1", Say: "x"}); err == nil {
		t.Error("Call with a cancelled context succeeded")
	}
}

func TestTwiMLPlayAndEscaping(t *testing.T) {
	doc, err := TwiML(phone.CallRequest{AudioURL: "https://m.example/clip.wav?a=1&b=2", Gather: &phone.Gather{ActionURL: "https://m.example/g?x=1&y=2", Timeout: 5 * time.Second}}, "Polly.Joanna", "en-US")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<Play>https://m.example/clip.wav?a=1&amp;b=2</Play>`,
		`action="https://m.example/g?x=1&amp;y=2"`,
		`timeout="5"`,
		`<Say voice="Polly.Joanna" language="en-US">`,
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("%s\nlacks %s", doc, want)
		}
	}
	doc, _ = TwiML(phone.CallRequest{Say: "a < b & c"}, "", "")
	if !strings.Contains(doc, "<Response><Say>a &lt; b &amp; c</Say></Response>") {
		t.Errorf("%s", doc)
	}
}
