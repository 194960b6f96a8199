package escalation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/phone"
	"github.com/mciv/mciv/notifier/phone/twilio"
	"github.com/mciv/mciv/notifier/phone/twilio/twiliotest"
)

const (
	sid   = "AC00000000000000000000000000000001"
	token = "secrettoken0123456789"
)

// t0 is a Tuesday: alice is primary, bob secondary.
var t0 = time.Date(2026, 1, 6, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t0.Add(d)
}

// thread records the replies posted to alert threads.
type thread struct {
	mu    sync.Mutex
	lines []string
}

func (th *thread) PostThreadReply(_ context.Context, fp, text string) error {
	th.mu.Lock()
	defer th.mu.Unlock()
	th.lines = append(th.lines, fp+": "+text)
	return nil
}

func (th *thread) all() []string {
	th.mu.Lock()
	defer th.mu.Unlock()
	return append([]string(nil), th.lines...)
}

// acks records the acknowledgements published.
type acks struct {
	mu   sync.Mutex
	list []wire.Ack
}

func (a *acks) PublishAck(_ context.Context, ack *wire.Ack) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, *ack)
	return nil
}

type env struct {
	t      *testing.T
	eng    *Engine
	prov   *twilio.Provider
	fake   *twiliotest.Server
	clock  *clock
	thread *thread
	acks   *acks
}

// newEnv builds an engine calling through the real Twilio provider and
// client library against the fake Twilio, with the callback endpoint
// served on loopback. fake and store may be shared between engines (a
// restart); nil makes new ones.
func newEnv(t *testing.T, cfg Config, fake *twiliotest.Server, store Store, clk *clock) *env {
	t.Helper()
	if fake == nil {
		fake = twiliotest.Start(t, sid, token)
	}
	if clk == nil {
		clk = &clock{t: t0}
	}
	e := &env{t: t, fake: fake, clock: clk, thread: &thread{}, acks: &acks{}}
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.prov.Handler(e.eng).ServeHTTP(w, r)
	}))
	t.Cleanup(ep.Close)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	var err error
	e.prov, err = twilio.New(twilio.Options{
		Config:     twilio.Config{AccountSID: sid, AuthToken: token, From: "+15551230000", PublicURL: ep.URL},
		HTTPClient: fake.HTTPClient(),
		Logger:     logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.eng, err = New(Options{
		Config: cfg, Provider: e.prov, Store: store, Thread: e.thread, Acks: e.acks,
		Cluster: "default", Now: clk.Now, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.eng.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e
}

// at moves the clock to t0+d and ticks.
func (e *env) at(d time.Duration) {
	e.clock.Set(d)
	e.eng.Tick(e.t.Context())
}

// called returns the numbers called so far.
func (e *env) called() []string {
	var out []string
	for _, c := range e.fake.Calls() {
		out = append(out, c.To)
	}
	return out
}

func (e *env) wantCalled(when string, want ...string) {
	e.t.Helper()
	if got := e.called(); strings.Join(got, ",") != strings.Join(want, ",") {
		e.t.Fatalf("%s: called %v, want %v", when, got, want)
	}
}

const (
	alice = "+15551230001"
	bob   = "+15551230002"
	carol = "+15551230003"
)

func firing(fp string) *wire.Alert {
	return &wire.Alert{
		Fingerprint: fp,
		Rule:        "DiskFull",
		State:       wire.StateFiring,
		Labels:      map[string]string{"severity": "critical", "host": "db-1", "cluster": "payments"},
		Signal:      "disk_used_ratio",
		Value:       0.97,
		StartsAt:    t0,
		At:          t0,
	}
}

func resolved(fp string) *wire.Alert {
	a := firing(fp)
	a.State = wire.StateResolved
	return a
}

func TestNobodyAnswers(t *testing.T) {
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	if err := e.eng.Notify(t.Context(), firing("fp1")); err != nil {
		t.Fatal(err)
	}
	e.wantCalled("at 0")
	e.at(5*time.Minute - time.Second)
	e.wantCalled("at 4m59s")
	e.at(5 * time.Minute)
	e.wantCalled("at 5m", alice)

	c := e.fake.Calls()[0]
	if !strings.Contains(c.Twiml, "<Say>Critical. Disk used") || !strings.Contains(c.Twiml, "d b 1") || c.GatherAction() != e.prov.GatherURL() {
		t.Errorf("TwiML %s", c.Twiml)
	}
	if r, err := e.fake.SendStatus(t.Context(), c, "ringing"); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("status callback: %+v %v", r, err)
	}
	if r, err := e.fake.SendStatus(t.Context(), c, "no-answer"); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("status callback: %+v %v", r, err)
	}
	e.at(15*time.Minute - time.Second)
	e.wantCalled("at 14m59s", alice)
	e.at(15 * time.Minute)
	e.wantCalled("at 15m", alice, bob)
	e.at(25 * time.Minute)
	e.wantCalled("at 25m", alice, bob, alice, bob, carol)
	e.at(3 * time.Hour)
	e.wantCalled("at 3h", alice, bob, alice, bob, carol)

	st, _ := e.eng.Escalation("fp1")
	if st.Stopped || len(st.Calls) != 5 || st.Calls[0].Status != phone.StatusNoAnswer || st.Calls[1].Person != "bob" {
		t.Errorf("state %+v", st)
	}
	want := []string{
		"fp1: 📟 Phone escalation started (policy critical): primary (alice) after 5m0s; secondary (bob) after 15m0s; everyone after 25m0s.",
		"fp1: 📞 Calling alice (<@U0ALICE>) (step 1).",
		"fp1: 📞 Call to alice (<@U0ALICE>): no answer.",
		"fp1: 📞 Calling bob (<@U0BOB>) (step 2).",
		"fp1: 📞 Calling alice (<@U0ALICE>) (step 3).",
		"fp1: 📞 Calling bob (<@U0BOB>) (step 3).",
		"fp1: 📞 Calling carol (step 3).",
	}
	if got := e.thread.all(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("thread:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The alert resolves: the escalation stops and says so.
	if err := e.eng.Notify(t.Context(), resolved("fp1")); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.eng.Escalation("fp1"); !st.Stopped || st.StopReason != "the alert resolved" {
		t.Errorf("after resolve: %+v", st)
	}
}

func TestPressingOneStopsTheEscalation(t *testing.T) {
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	if err := e.eng.Notify(t.Context(), firing("fp1")); err != nil {
		t.Fatal(err)
	}
	e.at(5 * time.Minute)
	e.wantCalled("at 5m", alice)
	e.clock.Set(6 * time.Minute)
	resp, err := e.fake.Press(t.Context(), e.fake.Calls()[0], "1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusOK || !strings.Contains(resp.Body, "<Say>Acknowledged. Thank you, alice. Goodbye.</Say><Hangup>") {
		t.Errorf("gather answered %d %s", resp.Status, resp.Body)
	}
	if r, _ := e.fake.SendStatus(t.Context(), e.fake.Calls()[0], "completed"); r.Status != http.StatusNoContent {
		t.Errorf("status answered %d", r.Status)
	}
	for _, d := range []time.Duration{15 * time.Minute, 25 * time.Minute, 2 * time.Hour} {
		e.at(d)
	}
	e.wantCalled("after pressing 1", alice)

	if len(e.acks.list) != 1 {
		t.Fatalf("acks published: %+v", e.acks.list)
	}
	a := e.acks.list[0]
	if a.Fingerprint != "fp1" || a.Action != wire.AckAcknowledge || a.By != "alice" || a.Via != "phone" || a.Cluster != "payments" ||
		!a.At.Equal(t0.Add(6*time.Minute)) || a.ID == "" {
		t.Errorf("ack %+v", a)
	}
	st, _ := e.eng.Escalation("fp1")
	if !st.Stopped || st.StopReason != "acknowledged by alice via phone" || st.Calls[0].Digits != "1" || st.Calls[0].Status != phone.StatusCompleted {
		t.Errorf("state %+v", st)
	}
	thread := strings.Join(e.thread.all(), "\n")
	for _, want := range []string{
		"fp1: 📞 Calling alice (<@U0ALICE>) (step 1).",
		"fp1: 📞 alice (<@U0ALICE>) pressed 1: acknowledged.",
		"fp1: ✅ Phone escalation stopped: acknowledged by alice via phone (1 call(s) placed).",
		"fp1: 📞 Call to alice (<@U0ALICE>): completed.",
	} {
		if !strings.Contains(thread, want) {
			t.Errorf("thread lacks %q:\n%s", want, thread)
		}
	}
	// The Ack comes back from MCIV_ACKS: nothing more happens.
	e.eng.HandleAck(t.Context(), &a)
	if n := strings.Count(strings.Join(e.thread.all(), "\n"), "stopped"); n != 1 {
		t.Errorf("stopped %d times", n)
	}
}

func TestKeys(t *testing.T) {
	for digits, want := range map[string]struct {
		action wire.AckAction
		say    string
	}{
		"2": {wire.AckResolve, "Resolved."},
		"3": {wire.AckSilence, "Silenced for one hour."},
	} {
		e := newEnv(t, exampleConfig(t), nil, nil, nil)
		_ = e.eng.Notify(t.Context(), firing("fp1"))
		e.at(5 * time.Minute)
		resp, err := e.fake.Press(t.Context(), e.fake.Calls()[0], digits)
		if err != nil || !strings.Contains(resp.Body, want.say) {
			t.Fatalf("press %s: %+v %v", digits, resp, err)
		}
		if len(e.acks.list) != 1 || e.acks.list[0].Action != want.action {
			t.Fatalf("press %s: acks %+v", digits, e.acks.list)
		}
		if want.action == wire.AckSilence && !e.acks.list[0].Until.Equal(t0.Add(5*time.Minute+SilenceFor)) {
			t.Errorf("silence until %s", e.acks.list[0].Until)
		}
	}
	// A key not in the menu, or none: the escalation continues.
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	_ = e.eng.Notify(t.Context(), firing("fp1"))
	e.at(5 * time.Minute)
	if resp, _ := e.fake.Press(t.Context(), e.fake.Calls()[0], "9"); !strings.Contains(resp.Body, "not in the menu") {
		t.Errorf("press 9: %s", resp.Body)
	}
	e.at(15 * time.Minute)
	e.wantCalled("after pressing 9", alice, bob)
	if len(e.acks.list) != 0 {
		t.Errorf("acks %+v", e.acks.list)
	}
}

func TestSlackAckStopsTheEscalation(t *testing.T) {
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	_ = e.eng.Notify(t.Context(), firing("fp1"))
	e.at(5 * time.Minute)
	// An Ack from before this escalation (an earlier firing) does not stop it.
	e.eng.HandleAck(t.Context(), &wire.Ack{Fingerprint: "fp1", Action: wire.AckAcknowledge, By: "U0BOB", Via: "slack", At: t0.Add(-time.Hour), ID: "old"})
	e.clock.Set(7 * time.Minute)
	e.eng.HandleAck(t.Context(), &wire.Ack{Fingerprint: "fp1", Action: wire.AckAcknowledge, By: "U0BOB", Via: "slack", At: t0.Add(7 * time.Minute), ID: "s1"})
	e.at(30 * time.Minute)
	e.wantCalled("after the Slack ack", alice)
	if st, _ := e.eng.Escalation("fp1"); st.StopReason != "acknowledged by U0BOB via slack" {
		t.Errorf("stop reason %q", st.StopReason)
	}
}

func TestForgedKeyPressRefused(t *testing.T) {
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	_ = e.eng.Notify(t.Context(), firing("fp1"))
	e.at(5 * time.Minute)
	c := e.fake.Calls()[0]
	form := url.Values{"AccountSid": {sid}, "CallSid": {c.SID}, "Digits": {"1"}, "CallStatus": {"in-progress"}}
	resp, err := e.fake.Post(t.Context(), e.prov.GatherURL(), form, twiliotest.Signature("not-the-token", e.prov.GatherURL(), form))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusForbidden {
		t.Fatalf("forged press answered %d, want 403", resp.Status)
	}
	e.at(15 * time.Minute)
	e.wantCalled("after a forged press", alice, bob)
	if st, _ := e.eng.Escalation("fp1"); st.Stopped || st.Calls[0].Digits != "" || len(e.acks.list) != 0 {
		t.Errorf("a forged request changed the state: %+v, acks %v", st, e.acks.list)
	}
}

func TestQuotas(t *testing.T) {
	cfg := exampleConfig(t)
	cfg.Policies = []Policy{{Name: "flappy", Steps: []Step{{After: 0, Call: []string{"primary"}}}, Repeat: 10, RepeatAfter: 5 * time.Minute}}
	cfg.Quotas = Quotas{PerPersonPerHour: 4, PerPersonPerAlert: 2}
	e := newEnv(t, cfg, nil, nil, nil)
	_ = e.eng.Notify(t.Context(), firing("fp1")) // calls alice at once
	e.at(5 * time.Minute)                        // second call about fp1
	e.at(10 * time.Minute)                       // third: over the per-alert quota
	e.wantCalled("one alert", alice, alice)
	// A flapping rule: new fingerprints keep calling alice, up to 4 an hour.
	for i, fp := range []string{"fp2", "fp3", "fp4"} {
		e.clock.Set(time.Duration(11+i) * time.Minute)
		_ = e.eng.Notify(t.Context(), firing(fp))
	}
	e.wantCalled("flapping", alice, alice, alice, alice)
	st1, _ := e.eng.Escalation("fp1")
	st4, _ := e.eng.Escalation("fp4")
	if st1.Suppressed != 1 || st4.Suppressed != 1 || len(st4.Calls) != 0 {
		t.Errorf("suppressed: fp1 %d, fp4 %d (calls %d)", st1.Suppressed, st4.Suppressed, len(st4.Calls))
	}
	thread := strings.Join(e.thread.all(), "\n")
	for _, want := range []string{
		"fp1: 📵 Not calling alice (<@U0ALICE>): already called 2 times about this alert (quota per_person_per_alert).",
		"fp4: 📵 Not calling alice (<@U0ALICE>): already called 4 times in the last hour (quota per_person_per_hour).",
	} {
		if !strings.Contains(thread, want) {
			t.Errorf("thread lacks %q:\n%s", want, thread)
		}
	}
	// An hour after the first calls, alice can be called again: the
	// missed repeats of fp2 and fp3 call her once each, fp4 is over the
	// hourly quota again.
	e.at(65 * time.Minute)
	if n := len(e.called()); n != 6 {
		t.Errorf("after an hour: %d calls, want 6", n)
	}
	if st, _ := e.eng.Escalation("fp2"); len(st.Calls) != 2 {
		t.Errorf("fp2 calls %+v", st.Calls)
	}
}

func TestFailedCallIsReported(t *testing.T) {
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	e.fake.FailCalls(http.StatusBadRequest, 21211, "Invalid 'To' Phone Number")
	_ = e.eng.Notify(t.Context(), firing("fp1"))
	e.at(5 * time.Minute)
	st, _ := e.eng.Escalation("fp1")
	if len(st.Calls) != 1 || st.Calls[0].Status != phone.StatusFailed || !strings.Contains(st.Calls[0].Err, "21211") {
		t.Errorf("calls %+v", st.Calls)
	}
	if thread := strings.Join(e.thread.all(), "\n"); !strings.Contains(thread, "Calling alice (<@U0ALICE>) (step 1) failed") || strings.Contains(thread, token) {
		t.Errorf("thread:\n%s", thread)
	}
	e.fake.FailCalls(0, 0, "")
	e.at(15 * time.Minute)
	e.wantCalled("after a failed call", bob)
}

func TestRedeliveryAndNonMatchingAlerts(t *testing.T) {
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	a := firing("fp1")
	_ = e.eng.Notify(t.Context(), a)
	e.at(5 * time.Minute)
	_ = e.eng.Notify(t.Context(), a) // redelivered: same firing
	e.at(6 * time.Minute)
	e.wantCalled("redelivery", alice)
	w := firing("fp2")
	w.Labels["severity"] = "warning"
	_ = e.eng.Notify(t.Context(), w)
	if _, ok := e.eng.Escalation("fp2"); ok {
		t.Error("a warning started an escalation")
	}
	// A new firing of fp1 after it resolved starts over.
	_ = e.eng.Notify(t.Context(), resolved("fp1"))
	b := firing("fp1")
	b.StartsAt = t0.Add(time.Hour)
	e.clock.Set(time.Hour)
	_ = e.eng.Notify(t.Context(), b)
	e.at(time.Hour + 5*time.Minute)
	e.wantCalled("new firing", alice, alice)
}

// clips hands out clip URLs, or fails.
type clips struct{ fail bool }

func (c clips) URL(_ context.Context, text string) (string, error) {
	if c.fail {
		return "", errors.New("no engine")
	}
	return "https://m.example/voice/clips/" + fmt.Sprint(len(text)) + ".wav", nil
}

func TestCallPlaysTheClip(t *testing.T) {
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	e.eng.opts.Clips = clips{}
	_ = e.eng.Notify(t.Context(), firing("fp1"))
	e.at(5 * time.Minute)
	e.eng.opts.Clips = clips{fail: true}
	e.at(15 * time.Minute)
	calls := e.fake.Calls()
	if len(calls) != 2 || !strings.Contains(calls[0].Twiml, "<Play>https://m.example/voice/clips/") || strings.Contains(calls[0].Twiml, "<Say>Critical") {
		t.Fatalf("first call TwiML: %v", calls)
	}
	if !strings.Contains(calls[1].Twiml, "<Say>Critical") {
		t.Errorf("without a clip the call says the text: %s", calls[1].Twiml)
	}
}

func TestStoppedEscalationsAreForgotten(t *testing.T) {
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	_ = e.eng.Notify(t.Context(), firing("fp1"))
	_ = e.eng.Notify(t.Context(), resolved("fp1"))
	e.at(23 * time.Hour)
	if _, ok := e.eng.Escalation("fp1"); !ok {
		t.Fatal("a stopped escalation was forgotten within a day")
	}
	e.at(25 * time.Hour)
	if _, ok := e.eng.Escalation("fp1"); ok {
		t.Fatal("a stopped escalation was remembered after a day")
	}
}
