package notifier_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/console"
	"github.com/mciv/mciv/notifier/escalation"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/phone/twilio"
	"github.com/mciv/mciv/notifier/phone/twilio/twiliotest"
	"github.com/mciv/mciv/notifier/route"
	"github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/mciv/mciv/notifier/tts"
	"github.com/mciv/mciv/notifier/voice"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"
)

// fakeClock is the injected clock of the outage test: it moves only when
// the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// speaker is a text-to-speech engine that answers at once.
type speaker struct{}

func (speaker) Name() string { return "fake" }

func (speaker) Synthesize(_ context.Context, req tts.Request) (tts.Audio, error) {
	return tts.NewAudio([]byte("clip:"+req.Text), req.Format, "fake"), nil
}

const stormOnCall = `
people:
  - {name: alice, phone: "+15551230001"}
  - {name: bob,   phone: "+15551230002"}
rotations:
  - {name: primary,   people: [alice], handoff: "2026-01-05 09:00", length: 168h}
  - {name: secondary, people: [bob],   handoff: "2026-01-05 09:00", length: 168h}
policies:
  - name: critical
    match: {severity: critical}
    steps:
      - {after: 0s, call: [primary]}
      - {after: 5m, call: [secondary]}
quotas: {per_person_per_hour: 1000, per_person_per_alert: 10}
`

// storm is the outage test's world: one dispatcher feeding console, Slack
// (grouped by host), voice and phone escalation, all on one fake clock.
type storm struct {
	t     *testing.T
	env   *natsEnv
	clock *fakeClock
	slack *slacktest.Server
	phone *twiliotest.Server
	esc   *escalation.Engine
	// replies queues the escalation's thread replies (Slack may be down).
	replies *slack.ReplyQueue
	voice   *lines
	run     *running
	cfg     notifier.DispatcherConfig
}

func newStorm(t *testing.T, ctx context.Context, t0 time.Time) *storm {
	t.Helper()
	s := &storm{t: t, env: startNATS(t, ctx, t.TempDir()), clock: &fakeClock{t: t0},
		slack: slacktest.New(t, slackToken), phone: twiliotest.Start(t, "AC0000000000000000000000000000000a", "twiliosecret0"), voice: newLines()}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))

	nfl, err := nflog.Open(ctx, s.env.js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := route.New(&route.Route{Receiver: "oncall", GroupBy: []string{"cluster", "host"}}, []route.Receiver{{Name: "oncall"}})
	if err != nil {
		t.Fatal(err)
	}
	inc, err := slack.NewIncidents(slack.IncidentsConfig{
		Config:      slack.Config{Token: slackToken, Channel: "#oncall", APIURL: s.slack.URL(), MaxAttempts: 2, RetryBackoff: 5 * time.Millisecond},
		Routes:      tree,
		Log:         nfl,
		Replica:     "storm",
		ChannelRate: 1000,
		Now:         s.clock.Now,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	v, err := voice.New(voice.Options{Engine: speaker{}, Dir: t.TempDir(), Thread: inc, Out: s.voice, Now: s.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	var oc escalation.Config
	dec := yaml.NewDecoder(strings.NewReader(stormOnCall))
	dec.KnownFields(true)
	if err := dec.Decode(&oc); err != nil {
		t.Fatal(err)
	}
	if err := oc.Validate(); err != nil {
		t.Fatal(err)
	}
	prov, err := twilio.New(twilio.Options{
		Config:     twilio.Config{AccountSID: "AC0000000000000000000000000000000a", AuthToken: "twiliosecret0", From: "+15551230000", PublicURL: "http://127.0.0.1:1"},
		HTTPClient: s.phone.HTTPClient(),
		Logger:     logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.replies = slack.NewReplyQueue(inc, slack.ReplyQueueConfig{RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	qctx, stopQueue := context.WithCancel(ctx)
	var queueDone sync.WaitGroup
	queueDone.Go(func() { _ = s.replies.Run(qctx) })
	t.Cleanup(func() { stopQueue(); queueDone.Wait() })
	s.esc, err = escalation.New(escalation.Options{Config: oc, Provider: prov, Thread: s.replies, Cluster: "default", Now: s.clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg = notifier.DispatcherConfig{RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		MaxPending: 100, DepthInterval: 20 * time.Millisecond, Now: s.clock.Now}
	s.run = start(t, ctx, s.env.js, s.cfg, console.New(newLines()), inc, v, s.esc)
	return s
}

// stormAlert is rule on host, in state at time at, started at t0.
func stormAlert(rule, host string, state wire.AlertState, t0, at time.Time) *wire.Alert {
	a := &wire.Alert{
		V: wire.Version, Fingerprint: rule + "/" + host, Rule: rule, State: state,
		Labels:      map[string]string{"cluster": "default", "host": host, "severity": "critical"},
		Annotations: map[string]string{"summary": rule + " on " + host},
		Value:       12.3, Threshold: 5, StartsAt: t0, At: at,
	}
	if state == wire.StateResolved {
		a.EndsAt = at
	}
	return a
}

// lane waits until the integration's consumer acknowledged up to seq.
func (s *storm) lane(ctx context.Context, integration string, seq uint64) {
	s.t.Helper()
	s.env.waitAcked(ctx, notifier.LaneDurable(notifier.DefaultDurable, integration), seq)
}

// callTimes returns, per alert, the fake times its calls were placed at
// (minutes after t0) and to whom.
func (s *storm) callTimes(fps []string, t0 time.Time) map[string]string {
	out := map[string]string{}
	for _, fp := range fps {
		st, _ := s.esc.Escalation(fp)
		var cs []string
		for _, c := range st.Calls {
			cs = append(cs, fmt.Sprintf("%s@%s", c.Person, c.At.Sub(t0)))
		}
		out[fp] = strings.Join(cs, ",")
	}
	return out
}

// stormHosts is the number of hosts of the storm, each with three
// critical alerts in one Slack group.
const stormHosts = 8

// stormCtx bounds one phase of the storm test. Generous: the machines are
// shared, and nothing here is a timed assertion (only polls with this
// deadline).
func stormCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// runStorm publishes stormHosts hosts × 3 critical rules firing at t0 and the
// third rule resolving on every host at t0+2m, moves the clock to t0+10m
// in 30 s steps (ticking the escalations), with Slack answering 503 from
// the start until slackBack. It returns the alerts' call times and the
// last stream sequence.
func runStorm(t *testing.T, slackDown bool) (*storm, map[string]string, uint64, []string) {
	ctx := stormCtx(t)
	t0 := time.Date(2026, 1, 6, 10, 0, 0, 0, time.UTC)
	s := newStorm(t, ctx, t0)
	if slackDown {
		s.slack.SetDown(http.StatusServiceUnavailable)
	}
	var fps []string
	var last uint64
	hosts, rules := stormHosts, []string{"DiskLatencyHigh", "TCPRetransmitRateHigh", "QueryLatencyHigh"}
	for h := range hosts {
		for _, r := range rules {
			a := stormAlert(r, fmt.Sprintf("db-%02d", h), wire.StateFiring, t0, t0)
			fps = append(fps, a.Fingerprint)
			last = s.env.publish(ctx, a)
		}
	}
	// Spoken and first calls placed at t0, whatever Slack does.
	s.lane(ctx, "escalation", last)
	if _, err := s.voice.wait(ctx, len(fps)); err != nil {
		t.Fatalf("voice: %v", err)
	}
	for step := 1; step <= 20; step++ {
		now := t0.Add(time.Duration(step) * 30 * time.Second)
		s.clock.Set(now)
		if now.Equal(t0.Add(2 * time.Minute)) {
			for h := range hosts {
				last = s.env.publish(ctx, stormAlert(rules[2], fmt.Sprintf("db-%02d", h), wire.StateResolved, t0, now))
			}
			s.lane(ctx, "escalation", last)
		}
		s.esc.Tick(ctx)
		if slackDown {
			// The backlog of the Slack lane shows, bounded by MaxPending.
			depth := testutil.ToFloat64(s.run.gauge(t, "mciv_notifier_queue_depth", "slack"))
			if depth > float64(last) {
				t.Fatalf("slack queue depth %v above the %d messages published", depth, last)
			}
		}
	}
	return s, s.callTimes(fps, t0), last, fps
}

func TestSlackOutageDelaysOnlySlack(t *testing.T) {
	// First the schedule with Slack up, then the same storm with Slack
	// answering 503 for the ten minutes: the same calls at the same times.
	began := time.Now()
	_, want, _, _ := runStorm(t, false)
	up := time.Since(began)
	began = time.Now()
	s, got, last, fps := runStorm(t, true)
	down := time.Since(began)
	ctx := stormCtx(t)

	for _, fp := range fps {
		if got[fp] != want[fp] {
			t.Errorf("%s: calls %q during the Slack outage, %q with Slack up", fp, got[fp], want[fp])
		}
		w := "alice@0s,bob@5m0s"
		if strings.HasPrefix(fp, "QueryLatencyHigh/") {
			w = "alice@0s" // resolved at 2m: escalation stopped
		}
		if got[fp] != w {
			t.Errorf("%s: calls %q, want %q", fp, got[fp], w)
		}
	}
	if n := len(s.slack.Messages()); n != 0 {
		t.Fatalf("Slack accepted %d messages while down", n)
	}
	if depth := testutil.ToFloat64(s.run.gauge(t, "mciv_notifier_queue_depth", "slack")); depth == 0 {
		t.Errorf("the Slack lane's queue depth is 0 during the outage")
	}
	c, err := s.env.js.Consumer(ctx, "MCIV_ALERTS", notifier.LaneDurable(notifier.DefaultDurable, "slack"))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(ctx); err != nil || info.NumAckPending > s.cfg.MaxPending {
		t.Fatalf("slack lane holds %+v messages, bound %d (%v)", info, s.cfg.MaxPending, err)
	}

	// Slack is back: every group's message arrives once, then the
	// resolution in its thread, in order.
	s.slack.SetDown(0)
	began = time.Now()
	s.lane(ctx, "slack", last)
	t.Logf("real time: storm with Slack up %s, with Slack down for 10 fake minutes %s, Slack backlog drained in %s",
		up.Round(time.Millisecond), down.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if err := eventually(ctx, func() bool {
		return testutil.ToFloat64(s.run.gauge(t, "mciv_notifier_queue_depth", "slack")) == 0
	}); err != nil {
		t.Fatal("slack queue depth did not drop to 0")
	}
	byTS := map[string][]slacktest.Message{}
	var tops []slacktest.Message
	for _, m := range s.slack.Messages() {
		if m.Method != "chat.postMessage" {
			continue
		}
		if m.ThreadTS == "" {
			tops = append(tops, m)
		} else {
			byTS[m.ThreadTS] = append(byTS[m.ThreadTS], m)
		}
	}
	if len(tops) != stormHosts {
		t.Fatalf("%d group messages, want %d (one per host)", len(tops), stormHosts)
	}
	hosts := map[string]bool{}
	for _, m := range tops {
		host := ""
		for h := range stormHosts {
			if name := fmt.Sprintf("db-%02d", h); strings.Contains(m.Text+m.BlockText(), name) {
				host = name
			}
		}
		if host == "" || hosts[host] {
			t.Fatalf("group message %q: host missing or twice", m.Text)
		}
		hosts[host] = true
		replies := byTS[m.TS]
		var texts []string
		for _, r := range replies {
			texts = append(texts, r.Text)
		}
		if len(texts) != len(slices.Compact(slices.Clone(texts))) {
			t.Errorf("%s: a thread reply came twice: %q", host, texts)
		}
		resolved := slices.IndexFunc(texts, func(s string) bool { return strings.Contains(s, "QueryLatencyHigh") && strings.Contains(s, "RESOLVED") })
		if resolved < 0 {
			t.Errorf("%s: no resolution in the thread: %q", host, texts)
		}
	}
}

// gauge returns the series of the gauge vector name with the integration
// label, as a collector testutil can read.
func (r *running) gauge(t *testing.T, name, integration string) prometheus.Collector {
	t.Helper()
	return gaugeValue{r: r, name: name, integration: integration}
}

// gaugeValue collects one series of a gathered gauge.
type gaugeValue struct {
	r                 *running
	name, integration string
}

func (g gaugeValue) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc(g.name, "test", nil, nil)
}

func (g gaugeValue) Collect(ch chan<- prometheus.Metric) {
	mfs, err := g.r.reg.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "integration" && lp.GetValue() == g.integration {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "test", nil, nil), prometheus.GaugeValue, m.GetGauge().GetValue())
					return
				}
			}
		}
	}
}

// TestCallsOnTimeWhileSlackFailsAfterTheThreadExists: the groups' Slack
// threads exist, then Slack fails slowly (every call hangs, then 503)
// while the escalations go on: every call is placed at the time it is
// placed with Slack up (alice at once, bob after 5m; the resolved alerts'
// escalations stop at 2m), no tick waits for Slack, and once Slack is
// back the escalation's replies arrive in each thread, once each, in the
// order they happened.
func TestCallsOnTimeWhileSlackFailsAfterTheThreadExists(t *testing.T) {
	ctx := stormCtx(t)
	t0 := time.Date(2026, 1, 6, 10, 0, 0, 0, time.UTC)
	s := newStorm(t, ctx, t0)
	rules := []string{"DiskLatencyHigh", "TCPRetransmitRateHigh", "QueryLatencyHigh"}
	var fps []string
	var last uint64
	for h := range stormHosts {
		for _, r := range rules {
			a := stormAlert(r, fmt.Sprintf("db-%02d", h), wire.StateFiring, t0, t0)
			fps = append(fps, a.Fingerprint)
			last = s.env.publish(ctx, a)
		}
	}
	s.lane(ctx, "escalation", last)
	s.lane(ctx, "slack", last)
	if _, err := s.voice.wait(ctx, len(fps)); err != nil {
		t.Fatalf("voice: %v", err)
	}
	if err := eventually(ctx, func() bool { return s.replies.Len() == 0 }); err != nil {
		t.Fatalf("%d replies still queued with Slack up", s.replies.Len())
	}
	threadOf := map[string]string{} // host -> ts of its group message
	for _, m := range s.slack.Messages() {
		if m.Method != "chat.postMessage" || m.ThreadTS != "" {
			continue
		}
		for h := range stormHosts {
			if name := fmt.Sprintf("db-%02d", h); strings.Contains(m.Text+m.BlockText(), name) {
				threadOf[name] = m.TS
			}
		}
	}
	if len(threadOf) != stormHosts {
		t.Fatalf("threads of %d hosts, want %d", len(threadOf), stormHosts)
	}

	// Slack fails: every call hangs, then 503.
	before := len(s.slack.Messages())
	s.slack.SetDown(http.StatusServiceUnavailable)
	s.slack.SetStalled(true)
	began := time.Now()
	for step := 1; step <= 20; step++ {
		now := t0.Add(time.Duration(step) * 30 * time.Second)
		s.clock.Set(now)
		if now.Equal(t0.Add(2 * time.Minute)) {
			for h := range stormHosts {
				last = s.env.publish(ctx, stormAlert(rules[2], fmt.Sprintf("db-%02d", h), wire.StateResolved, t0, now))
			}
			s.lane(ctx, "escalation", last) // stops without waiting for Slack
		}
		// A liveness bound, not a timing: a tick that posts to Slack
		// itself hangs until Slack recovers.
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s.esc.Tick(tctx)
		stuck := tctx.Err() != nil
		cancel()
		if stuck {
			t.Fatalf("the escalation tick at %s waited for Slack", now.Sub(t0))
		}
	}
	got := s.callTimes(fps, t0)
	for _, fp := range fps {
		want := "alice@0s,bob@5m0s" // as with Slack up (TestSlackOutageDelaysOnlySlack)
		if strings.HasPrefix(fp, "QueryLatencyHigh/") {
			want = "alice@0s"
		}
		if got[fp] != want {
			t.Errorf("%s: calls %q while Slack failed, want %q", fp, got[fp], want)
		}
	}
	if n := len(s.slack.Messages()); n != before {
		t.Fatalf("Slack accepted %d messages while failing", n-before)
	}
	// Per host: one escalation stopped (the resolved alert), two calls to bob.
	if n := s.replies.Len(); n != 3*stormHosts {
		t.Errorf("%d replies queued during the outage, want %d", n, 3*stormHosts)
	}

	// Slack is back: the queued replies arrive, in order, once each.
	outage := time.Since(began)
	s.slack.SetDown(0)
	s.slack.SetStalled(false)
	began = time.Now()
	if err := eventually(ctx, func() bool { return s.replies.Len() == 0 }); err != nil {
		t.Fatalf("%d replies still queued after Slack came back", s.replies.Len())
	}
	t.Logf("real time: 10 fake minutes of escalation with Slack failing %s; %d queued replies posted %s after Slack came back",
		outage.Round(time.Millisecond), 3*stormHosts, time.Since(began).Round(time.Millisecond))
	byTS := map[string][]string{}
	for _, m := range s.slack.Messages()[before:] {
		if m.Method == "chat.postMessage" && m.ThreadTS != "" &&
			(strings.Contains(m.Text, "Phone escalation stopped") || strings.Contains(m.Text, "Calling")) {
			byTS[m.ThreadTS] = append(byTS[m.ThreadTS], m.Text)
		}
	}
	for host, ts := range threadOf {
		want := []string{
			"✅ Phone escalation stopped: the alert resolved (1 call(s) placed).",
			"📞 Calling bob (step 2).",
			"📞 Calling bob (step 2).",
		}
		if !slices.Equal(byTS[ts], want) {
			t.Errorf("%s: escalation replies after the outage %q, want %q", host, byTS[ts], want)
		}
	}
}
