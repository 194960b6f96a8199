package slack

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// jsEnv starts an embedded NATS with JetStream and the mciv streams.
func jsEnv(t *testing.T) jetstream.JetStream {
	t.Helper()
	ctx := context.Background()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "slack-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return js
}

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type incidentsEnv struct {
	js    jetstream.JetStream
	log   *nflog.Log
	slack *slacktest.Server
	clock *fakeClock
	rec   *recorder
}

func newIncidentsEnv(t *testing.T) *incidentsEnv {
	t.Helper()
	js := jsEnv(t)
	log, err := nflog.Open(context.Background(), js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &incidentsEnv{js: js, log: log, slack: slacktest.New(t, token),
		clock: &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, rec: &recorder{}}
}

// replica returns one notifier process on the shared log.
func (e *incidentsEnv) replica(t *testing.T, name string, mod func(*IncidentsConfig)) *Incidents {
	t.Helper()
	cfg := IncidentsConfig{
		Config:      Config{Token: token, Channel: "#oncall", APIURL: e.slack.URL(), MaxAttempts: 3},
		Log:         e.log,
		Replica:     name,
		ChannelRate: 1000,
		Now:         e.clock.Now,
		Registry:    prometheus.NewRegistry(),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := NewIncidents(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.call.wait = e.rec.wait
	return n
}

func alertOf(fp string, st wire.AlertState, at time.Time, value float64) *wire.Alert {
	a := testAlert()
	a.Fingerprint, a.State, a.At, a.Value = fp, st, at, value
	a.Labels = map[string]string{"cluster": "default", "host": "db-1", "severity": "warning", "peer": fp}
	if st == wire.StateResolved {
		a.EndsAt = at
	}
	return a
}

func topLevel(msgs []slacktest.Message) (top, replies []slacktest.Message) {
	for _, m := range msgs {
		if m.ThreadTS == "" {
			top = append(top, m)
		} else {
			replies = append(replies, m)
		}
	}
	return top, replies
}

func TestOneMessagePerGroupUpdatedInPlaceWithThreadReplies(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	n := env.replica(t, "r1", nil)
	t0 := env.clock.Now()
	steps := []*wire.Alert{
		alertOf("fpA", wire.StateFiring, t0, 12.3),
		alertOf("fpB", wire.StateFiring, t0.Add(time.Minute), 7),
		alertOf("fpA", wire.StateResolved, t0.Add(2*time.Minute), 1),
		alertOf("fpB", wire.StateResolved, t0.Add(3*time.Minute), 0.5),
	}
	for _, a := range steps {
		env.clock.Add(time.Minute)
		if err := n.Notify(ctx, a); err != nil {
			t.Fatalf("Notify %s %s: %v", a.Fingerprint, a.State, err)
		}
		// A redelivery changes nothing.
		if err := n.Notify(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	cur := env.slack.Current()
	top, replies := topLevel(cur)
	if len(top) != 1 {
		t.Fatalf("%d top-level messages, want 1: %+v", len(top), top)
	}
	if !strings.Contains(top[0].Text, "RESOLVED") || !strings.Contains(top[0].Text, "db-1") {
		t.Errorf("the group message now reads %q, want it resolved", top[0].Text)
	}
	if strings.Contains(top[0].BlockText(), "Acknowledge") {
		t.Errorf("a resolved group still has buttons: %s", top[0].BlockText())
	}
	var updates int
	for _, m := range env.slack.Messages() {
		if m.Method == "chat.update" {
			updates++
			if m.TS != top[0].TS {
				t.Errorf("updated %s, not the group message %s", m.TS, top[0].TS)
			}
		}
	}
	if updates != 3 {
		t.Errorf("%d updates, want 3 (one per later change)", updates)
	}
	want := []string{"FIRING* TCPRetransmitRateHigh on db-1: value 7", "RESOLVED* TCPRetransmitRateHigh on db-1: value 1", "RESOLVED* TCPRetransmitRateHigh on db-1: value 0.5"}
	if len(replies) != len(want) {
		t.Fatalf("%d thread replies, want %d: %+v", len(replies), len(want), replies)
	}
	for i, r := range replies {
		if r.ThreadTS != top[0].TS || !strings.Contains(r.Text, want[i]) {
			t.Errorf("reply %d = %q in thread %s, want %q in %s", i, r.Text, r.ThreadTS, want[i], top[0].TS)
		}
	}

	// The same group firing again is a new incident: a new message.
	env.clock.Add(time.Minute)
	if err := n.Notify(ctx, alertOf("fpA", wire.StateFiring, t0.Add(10*time.Minute), 20)); err != nil {
		t.Fatal(err)
	}
	if top, _ := topLevel(env.slack.Current()); len(top) != 2 {
		t.Errorf("a new incident after resolution: %d top-level messages, want 2", len(top))
	}
}

func TestButtonsOnFiringGroup(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	n := env.replica(t, "r1", nil)
	a := alertOf("fpA", wire.StateFiring, env.clock.Now(), 12.3)
	a.Annotations["runbook_url"] = "https://runbooks.example/tcp"
	a.Annotations["dashboard_url"] = "https://grafana.example/d/1"
	if err := n.Notify(ctx, a); err != nil {
		t.Fatal(err)
	}
	m := env.slack.Messages()[0]
	bt := m.BlockText()
	for _, want := range []string{"Acknowledge", "Silence 1h", "Silence 4h", "Silence 24h", "Resolve", "Runbook", "Dashboard", "db-1", "default", "warning", "12.3"} {
		if !strings.Contains(bt, want) {
			t.Errorf("the message does not show %q:\n%s", want, bt)
		}
	}
}

func TestRestartDoesNotPostAgain(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	a := alertOf("fpA", wire.StateFiring, env.clock.Now(), 12.3)
	if err := env.replica(t, "r1", nil).Notify(ctx, a); err != nil {
		t.Fatal(err)
	}
	// The process dies before it acknowledges; a new one gets the alert again.
	if err := env.replica(t, "r1", nil).Notify(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := len(env.slack.Messages()); n != 1 {
		t.Errorf("%d messages after a restart, want 1", n)
	}
}

func TestGroupWaitDefers(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	tree := mustTree(t, "route:\n  group_wait: 30s\n  group_interval: 1m\n")
	n := env.replica(t, "r1", func(c *IncidentsConfig) { c.Routes = tree })
	a := alertOf("fpA", wire.StateFiring, env.clock.Now(), 12.3)
	err := n.Notify(ctx, a)
	de, ok := errors.AsType[*notifier.DeferError](err)
	if !ok || de.After != 30*time.Second {
		t.Fatalf("Notify during group_wait = %v, want a 30s deferral", err)
	}
	// A second alert joins the group during group_wait.
	b := alertOf("fpB", wire.StateFiring, env.clock.Now(), 7)
	if _, ok := errors.AsType[*notifier.DeferError](n.Notify(ctx, b)); !ok {
		t.Fatal("second alert not deferred")
	}
	env.clock.Add(30 * time.Second)
	if err := n.Notify(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, b); err != nil { // already in the message: nothing to do
		t.Fatal(err)
	}
	msgs := env.slack.Messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Text, "+1 more") {
		t.Fatalf("after group_wait: %+v, want one message with both alerts", msgs)
	}
	// A change within group_interval waits for it.
	env.clock.Add(10 * time.Second)
	r := alertOf("fpB", wire.StateResolved, env.clock.Now(), 1)
	if de, ok := errors.AsType[*notifier.DeferError](n.Notify(ctx, r)); !ok || de.After != 50*time.Second {
		t.Fatalf("change within group_interval: %v, want deferred 50s", de)
	}
	env.clock.Add(50 * time.Second)
	if err := n.Notify(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := len(env.slack.Messages()); got != 3 { // post, update, reply
		t.Errorf("%d calls, want 3", got)
	}
}

func TestRateLimitAndServerErrorsDeliverOnce(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	n := env.replica(t, "r1", nil)
	env.slack.FailNext(1, http.StatusTooManyRequests, 2*time.Second)
	if err := n.Notify(ctx, alertOf("fpA", wire.StateFiring, env.clock.Now(), 1)); err != nil {
		t.Fatal(err)
	}
	if w := env.rec.got(); len(w) != 1 || w[0] != 2*time.Second {
		t.Errorf("waits %v, want the 2s Slack asked for", w)
	}
	if got := testutil.ToFloat64(n.call.calls.WithLabelValues("chat.postMessage", callRateLimited)); got != 1 {
		t.Errorf("rate_limited calls = %v, want 1", got)
	}
	// More 5xx than one Notify tries: handed back, then delivered later, once.
	env.slack.FailNext(3, http.StatusServiceUnavailable, 0)
	env.clock.Add(time.Minute)
	b := alertOf("fpA", wire.StateResolved, env.clock.Now(), 0)
	if err := n.Notify(ctx, b); err == nil {
		t.Fatal("Notify succeeded through three 503s with MaxAttempts 3")
	}
	if err := n.Notify(ctx, b); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	top, replies := topLevel(env.slack.Current())
	if len(top) != 1 || len(replies) != 1 || !strings.Contains(top[0].Text, "RESOLVED") {
		t.Errorf("after retries: top %+v replies %+v", top, replies)
	}
}

func TestReplicasRaceForOneGroup(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	r1 := env.replica(t, "r1", func(c *IncidentsConfig) { c.ClaimTTL = time.Hour })
	r2 := env.replica(t, "r2", func(c *IncidentsConfig) { c.ClaimTTL = time.Hour })
	t0 := env.clock.Now()
	for _, a := range []*wire.Alert{
		alertOf("fpA", wire.StateFiring, t0, 1),
		alertOf("fpA", wire.StateResolved, t0.Add(time.Minute), 0),
	} {
		// Both replicas get every alert at once (two durables, or a
		// redelivery racing the first delivery).
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, r := range []*Incidents{r1, r2} {
			wg.Go(func() { errs[i] = r.Notify(ctx, a) })
		}
		wg.Wait()
		deferred := 0
		for _, err := range errs {
			if _, ok := errors.AsType[*notifier.DeferError](err); ok {
				deferred++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		// The one that was deferred tries again later and finds it sent.
		for i, r := range []*Incidents{r1, r2} {
			if errs[i] != nil {
				if err := r.Notify(ctx, a); err != nil {
					t.Fatalf("retry: %v", err)
				}
			}
		}
	}
	top, replies := topLevel(env.slack.Current())
	msgs := env.slack.Messages()
	if len(top) != 1 || len(replies) != 1 || len(msgs) != 3 {
		t.Errorf("two replicas: %d top-level, %d replies, %d calls; want 1, 1, 3 (post, update, reply)", len(top), len(replies), len(msgs))
	}
}

func TestChartUploadedIntoThread(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	png := []byte("\x89PNG\r\n\x1a\n-chart-")
	n := env.replica(t, "r1", func(c *IncidentsConfig) {
		c.Charter = charterFunc(func(context.Context, *wire.Alert) ([]byte, error) { return png, nil })
	})
	if err := n.Notify(ctx, alertOf("fpA", wire.StateFiring, env.clock.Now(), 1)); err != nil {
		t.Fatal(err)
	}
	files := env.slack.Files()
	msgs := env.slack.Messages()
	if len(files) != 1 || string(files[0].Data) != string(png) || files[0].ThreadTS != msgs[0].TS || files[0].ChannelID != msgs[0].ChannelID {
		t.Errorf("files %+v, want the chart in the thread of %s", files, msgs[0].TS)
	}
}

type charterFunc func(context.Context, *wire.Alert) ([]byte, error)

func (f charterFunc) Chart(ctx context.Context, a *wire.Alert) ([]byte, error) { return f(ctx, a) }

func TestRepeatIntervalReminds(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	tree := mustTree(t, "route:\n  repeat_interval: 1h\n")
	r1 := env.replica(t, "r1", func(c *IncidentsConfig) { c.Routes = tree })
	r2 := env.replica(t, "r2", func(c *IncidentsConfig) { c.Routes = tree })
	if err := r1.Notify(ctx, alertOf("fpA", wire.StateFiring, env.clock.Now(), 12.3)); err != nil {
		t.Fatal(err)
	}
	env.clock.Add(59 * time.Minute)
	if err := r1.Repeat(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(env.slack.Messages()); n != 1 {
		t.Fatalf("reminded before repeat_interval: %d calls", n)
	}
	env.clock.Add(time.Minute)
	for _, r := range []*Incidents{r1, r2} { // both replicas run it: one reminder
		if err := r.Repeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, replies := topLevel(env.slack.Current())
	if len(replies) != 1 || !strings.Contains(replies[0].Text, "Still firing") {
		t.Fatalf("replies %+v, want one reminder", replies)
	}
	// Acknowledged: no more reminders.
	if _, _, err := env.log.Modify(ctx, groupKeyOf(t, env, "fpA"), func(e *nflog.Entry) (*nflog.Entry, error) {
		e.AckedBy = "U1"
		return e, nil
	}); err != nil {
		t.Fatal(err)
	}
	env.clock.Add(2 * time.Hour)
	if err := r1.Repeat(ctx); err != nil {
		t.Fatal(err)
	}
	if _, replies := topLevel(env.slack.Current()); len(replies) != 1 {
		t.Errorf("reminded an acknowledged group: %d replies", len(replies))
	}
}

// TestCriticalGroupPostsAtOnce: a group whose only alert is a firing
// critical one is posted without waiting group_wait; a warning in the same
// setting waits, and a critical alert joining a waiting group does not cut
// the wait short (the group holds more than it).
func TestCriticalGroupPostsAtOnce(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	tree := mustTree(t, "route:\n  group_wait: 30s\n  group_by: [alertname, host, peer]\n")
	n := env.replica(t, "r1", func(c *IncidentsConfig) { c.Routes = tree })

	crit := alertOf("fpC", wire.StateFiring, env.clock.Now(), 99)
	crit.Labels["severity"] = "critical"
	if err := n.Notify(ctx, crit); err != nil {
		t.Fatalf("lone critical alert: %v, want it posted at once", err)
	}
	if msgs := env.slack.Messages(); len(msgs) != 1 || msgs[0].ThreadTS != "" {
		t.Fatalf("after a lone critical alert: %+v, want one top-level message", msgs)
	}

	warn := alertOf("fpW", wire.StateFiring, env.clock.Now(), 1)
	if de, ok := errors.AsType[*notifier.DeferError](n.Notify(ctx, warn)); !ok || de.After != 30*time.Second {
		t.Fatalf("warning: %v, want a 30s group_wait", de)
	}
	join := alertOf("fpW", wire.StateFiring, env.clock.Now(), 50) // same group (peer fpW)
	join.Fingerprint, join.Labels["severity"] = "fpW2", "critical"
	if _, ok := errors.AsType[*notifier.DeferError](n.Notify(ctx, join)); !ok {
		t.Fatal("a critical alert joining a waiting group cut group_wait short")
	}
	if got := len(env.slack.Messages()); got != 1 {
		t.Fatalf("%d messages after the warning, want still 1", got)
	}
}
