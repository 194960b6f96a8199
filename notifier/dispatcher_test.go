package notifier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/console"
	"github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const slackToken = "xoxb-42-dispatcher-test"

// natsEnv is an embedded nats-server with the mciv streams, and a client.
type natsEnv struct {
	t   *testing.T
	dir string
	srv *bus.Embedded
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(t *testing.T, ctx context.Context, dir string) *natsEnv {
	t.Helper()
	e := startBareNATS(t, ctx, dir)
	if err := bus.EnsureStreams(ctx, e.js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// startBareNATS is startNATS without the streams.
func startBareNATS(t *testing.T, ctx context.Context, dir string) *natsEnv {
	t.Helper()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: dir, Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "notifier-test"})
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	e := &natsEnv{t: t, dir: dir, srv: srv, nc: nc, js: js}
	t.Cleanup(e.close)
	return e
}

func (e *natsEnv) close() {
	if e.nc != nil {
		e.nc.Close()
		e.nc = nil
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv = nil
	}
}

// publish publishes a to the alerts stream as the analyzer does and returns
// its stream sequence.
func (e *natsEnv) publish(ctx context.Context, a *wire.Alert) uint64 {
	e.t.Helper()
	data, err := wire.EncodeAlert(a)
	if err != nil {
		e.t.Fatal(err)
	}
	ack, err := e.js.Publish(ctx, wire.AlertSubject(a.Labels["cluster"], a.Rule), data, jetstream.WithMsgID(a.MsgID()))
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

// waitAcked waits until every lane of the dispatcher durable (its
// consumers durable-<integration>, or durable itself when a dispatcher
// has no integration) has nothing pending or unacknowledged and has
// acknowledged at least up to seq. It returns the info of the last lane.
func (e *natsEnv) waitAcked(ctx context.Context, durable string, seq uint64) *jetstream.ConsumerInfo {
	e.t.Helper()
	var info *jetstream.ConsumerInfo
	err := eventually(ctx, func() bool {
		st, err := e.js.Stream(ctx, bus.AlertsStream)
		if err != nil {
			return false
		}
		lanes := 0
		names := st.ConsumerNames(ctx)
		for name := range names.Name() {
			if name != durable && !strings.HasPrefix(name, durable+"-") {
				continue
			}
			c, err := e.js.Consumer(ctx, bus.AlertsStream, name)
			if err != nil {
				return false
			}
			if info, err = c.Info(ctx); err != nil || info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Stream < seq {
				return false
			}
			lanes++
		}
		return names.Err() == nil && lanes > 0
	})
	if err != nil {
		e.t.Fatalf("consumer %s did not acknowledge up to %d: %v (last info %+v)", durable, seq, err, info)
	}
	return info
}

// noGoroutinesIn waits until no goroutine runs code of the given packages
// (function name prefixes in stack traces), or returns the offenders when
// ctx ends.
func noGoroutinesIn(ctx context.Context, prefixes ...string) error {
	var offenders []string
	err := eventually(ctx, func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		offenders = offenders[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, p := range prefixes {
				if strings.Contains(g, "\n"+p) {
					offenders = append(offenders, g)
					break
				}
			}
		}
		return len(offenders) == 0
	})
	if err != nil {
		return fmt.Errorf("goroutines still running after Run returned:\n%s", strings.Join(offenders, "\n\n"))
	}
	return nil
}

// eventually polls cond until it holds or ctx ends.
func eventually(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// lines is a concurrency-safe io.Writer that a test can wait on.
type lines struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.buf.Write(p)
}

func (l *lines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSuffix(l.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (l *lines) wait(ctx context.Context, n int) ([]string, error) {
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		if got := l.get(); len(got) >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return l.get(), fmt.Errorf("%d of %d console lines: %w", len(l.get()), n, ctx.Err())
		case <-changed:
		}
	}
}

// running is a dispatcher running in a goroutine.
type running struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

// start runs a dispatcher over integrations until stop is called.
func start(t *testing.T, ctx context.Context, js jetstream.JetStream, cfg notifier.DispatcherConfig, integrations ...notifier.Notifier) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := notifier.NewDispatcher(cfg, integrations, reg, logger)
	r := &running{t: t, cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() { r.done <- d.Run(ctx, js) }()
	t.Cleanup(r.stop)
	return r
}

// stop cancels the dispatcher's context and waits for Run to return.
func (r *running) stop() {
	r.t.Helper()
	if r.done == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run returned %v after its context ended", err)
		}
	case <-time.After(15 * time.Second):
		r.t.Fatal("Run did not return after its context ended")
	}
	r.done = nil
}

func (r *running) counter(name string, labels ...string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

func newSlack(t *testing.T, srv *slacktest.Server, maxAttempts int) *slack.Notifier {
	t.Helper()
	n, err := slack.New(slack.Config{Token: slackToken, Channel: "#oncall", APIURL: srv.URL(), MaxAttempts: maxAttempts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func alert(rule, host string) *wire.Alert {
	now := time.Now().UTC()
	return &wire.Alert{
		V: wire.Version, Fingerprint: rule + "/" + host, Rule: rule, State: wire.StateFiring,
		Labels:      map[string]string{"cluster": "default", "host": host, "severity": "critical"},
		Annotations: map[string]string{"summary": rule + " on " + host},
		Value:       12.3, Threshold: 5, StartsAt: now, At: now,
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fast makes retries quick for tests.
var fast = notifier.DispatcherConfig{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}

func TestDeliversToConsoleAndSlackAndAcks(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	slackSrv := slacktest.New(t, slackToken)
	out := newLines()

	r := start(t, ctx, env.js, fast, console.New(out), newSlack(t, slackSrv, 0))
	seq := env.publish(ctx, alert("TCPRetransmitRateHigh", "db-1"))

	msgs, err := slackSrv.WaitMessages(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msgs[0].Text, "TCPRetransmitRateHigh on db-1") || !strings.Contains(msgs[0].Text, "12.3") {
		t.Errorf("slack text %q", msgs[0].Text)
	}
	got, err := out.wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "FIRING   TCPRetransmitRateHigh severity=critical cluster=default host=db-1 value=12.3 threshold=5 — TCPRetransmitRateHigh on db-1"; got[0] != want {
		t.Errorf("console line\n%s\nwant\n%s", got[0], want)
	}
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	c, err := env.js.Consumer(ctx, bus.AlertsStream, notifier.DefaultDurable+"-slack")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.Durable != "mciv-notifier-slack" || cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.AckWait != 30*time.Second ||
		cfg.MaxDeliver != -1 || cfg.DeliverPolicy != jetstream.DeliverAllPolicy {
		t.Errorf("consumer config %+v", cfg)
	}

	r.stop()
	// Everything Run started has ended. (The package's TestMain checks for
	// any leaked goroutine once the NATS servers are down; the embedded
	// server keeps goroutines for the durable consumer until then.)
	if err := noGoroutinesIn(ctx, "github.com/mciv/mciv/notifier.", "nats.go/jetstream."); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"integration", "slack", "result", "success"}, 1},
		{[]string{"integration", "console", "result", "success"}, 1},
		{[]string{"integration", "slack", "result", "failure"}, 0},
	} {
		if got := r.counter("mciv_notifier_notifications_total", c.labels...); got != c.want {
			t.Errorf("notifications_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if got := r.counter("mciv_notifier_notification_latency_seconds", "integration", "slack"); got != 1 {
		t.Errorf("latency observations for slack = %v, want 1", got)
	}
	if got := r.counter("mciv_notifier_messages_total", "integration", "slack", "outcome", "acked"); got != 1 {
		t.Errorf("messages_total{acked} = %v", got)
	}
}

func TestRestartDeliversExactlyOnce(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	env := startNATS(t, ctx, dir)
	slackSrv := slacktest.New(t, slackToken)
	out := newLines()
	countRule := func(msgs []slacktest.Message, rule string) int {
		n := 0
		for _, m := range msgs {
			if strings.Contains(m.Text, "] "+rule+" on") {
				n++
			}
		}
		return n
	}

	// Published while no notifier runs.
	seqA := env.publish(ctx, alert("RuleA", "db-1"))

	r1 := start(t, ctx, env.js, fast, console.New(out), newSlack(t, slackSrv, 0))
	if _, err := slackSrv.WaitMessages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	env.waitAcked(ctx, notifier.DefaultDurable, seqA)
	r1.stop()

	// Another dispatcher with the same durable: A is not delivered again.
	// B, published after, arrives; had A been redelivered it would have
	// come first.
	r2 := start(t, ctx, env.js, fast, console.New(out), newSlack(t, slackSrv, 0))
	seqB := env.publish(ctx, alert("RuleB", "db-2"))
	msgs, err := slackSrv.WaitMessages(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if countRule(msgs, "RuleA") != 1 || countRule(msgs, "RuleB") != 1 {
		t.Fatalf("after a notifier restart Slack got %d messages: %q / %q", len(msgs), msgs[0].Text, msgs[1].Text)
	}
	env.waitAcked(ctx, notifier.DefaultDurable, seqB)
	r2.stop()

	// The acknowledgements survive a restart of NATS itself.
	env.close()
	env = startNATS(t, ctx, dir)
	r3 := start(t, ctx, env.js, fast, console.New(out), newSlack(t, slackSrv, 0))
	seqC := env.publish(ctx, alert("RuleC", "db-3"))
	msgs, err = slackSrv.WaitMessages(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	env.waitAcked(ctx, notifier.DefaultDurable, seqC)
	r3.stop()

	msgs = slackSrv.Messages()
	if len(msgs) != 3 || countRule(msgs, "RuleA") != 1 || countRule(msgs, "RuleB") != 1 || countRule(msgs, "RuleC") != 1 {
		t.Fatalf("Slack got %d messages, want A, B and C once each", len(msgs))
	}
	if got := out.get(); len(got) != 3 {
		t.Fatalf("console got %d lines, want 3:\n%s", len(got), strings.Join(got, "\n"))
	}
}

func TestFailingIntegrationIsRetriedWithoutDuplicatingOthers(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	slackSrv := slacktest.New(t, slackToken)
	out := newLines()

	// Slack is down for the first three deliveries; the Slack notifier
	// does not retry by itself (one attempt), so the dispatcher has to.
	slackSrv.FailNext(3, http.StatusInternalServerError, 0)
	r := start(t, ctx, env.js, fast, console.New(out), newSlack(t, slackSrv, 1))
	seq := env.publish(ctx, alert("DiskLatencyHigh", "db-1"))

	if _, err := slackSrv.WaitMessages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	env.waitAcked(ctx, notifier.DefaultDurable, seq)

	// A later alert goes through once everywhere, and nothing else came.
	seq2 := env.publish(ctx, alert("Sentinel", "db-9"))
	msgs, err := slackSrv.WaitMessages(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	env.waitAcked(ctx, notifier.DefaultDurable, seq2)
	r.stop()

	if len(msgs) != 2 || !strings.Contains(msgs[0].Text, "DiskLatencyHigh") || !strings.Contains(msgs[1].Text, "Sentinel") {
		t.Fatalf("slack messages %d: %+v", len(msgs), msgs)
	}
	var statuses []int
	for _, rq := range slackSrv.Requests() {
		statuses = append(statuses, rq.Status)
	}
	if want := []int{500, 500, 500, 200, 200}; fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Errorf("slack calls answered %v, want %v", statuses, want)
	}
	got := out.get()
	if len(got) != 2 || !strings.Contains(got[0], "DiskLatencyHigh") || !strings.Contains(got[1], "Sentinel") {
		t.Fatalf("console delivered a redelivery again:\n%s", strings.Join(got, "\n"))
	}
	if got := r.counter("mciv_notifier_notifications_total", "integration", "slack", "result", "failure"); got != 3 {
		t.Errorf("slack failures = %v, want 3", got)
	}
	if got := r.counter("mciv_notifier_messages_total", "integration", "slack", "outcome", "retry"); got != 3 {
		t.Errorf("messages_total{retry} = %v, want 3", got)
	}
}

func TestUndecodableMessagesAreCountedAndTerminated(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	slackSrv := slacktest.New(t, slackToken)
	out := newLines()
	r := start(t, ctx, env.js, fast, console.New(out), newSlack(t, slackSrv, 0))

	for _, data := range []string{"garbage", `{"v":99,"rule":"R","fingerprint":"f","state":"firing"}`, `{"v":1,"rule":"R","state":"firing"}`} {
		if _, err := env.js.Publish(ctx, "mciv.alerts.c.r", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	seq := env.publish(ctx, alert("AfterGarbage", "db-1"))

	msgs, err := slackSrv.WaitMessages(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msgs[0].Text, "AfterGarbage") {
		t.Fatalf("slack got %q", msgs[0].Text)
	}
	// Terminated messages are not pending: the consumer's ack floor passes them.
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	r.stop()

	for reason, want := range map[string]float64{"malformed": 1, "schema_version": 1, "invalid": 1} {
		if got := r.counter("mciv_notifier_bad_messages_total", "reason", reason); got != want {
			t.Errorf("bad_messages_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := r.counter("mciv_notifier_messages_total", "integration", "slack", "outcome", "terminated"); got != 3 {
		t.Errorf("messages_total{terminated} = %v, want 3", got)
	}
	if got := len(out.get()); got != 1 {
		t.Errorf("console got %d lines, want 1", got)
	}
}

// blocking is an integration that blocks until its context ends.
// blocking stands in for a Slack that hangs: it has Slack's name, so that
// the next dispatcher's Slack lane continues its consumer.
type blocking struct{ entered chan struct{} }

func (b *blocking) Name() string { return "slack" }

func (b *blocking) Notify(ctx context.Context, _ *wire.Alert) error {
	close(b.entered)
	<-ctx.Done()
	return ctx.Err()
}

func TestShutdownHandsAnInterruptedMessageOver(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	slackSrv := slacktest.New(t, slackToken)

	b := &blocking{entered: make(chan struct{})}
	r1 := start(t, ctx, env.js, fast, b)
	seq := env.publish(ctx, alert("Interrupted", "db-1"))
	select {
	case <-b.entered:
	case <-ctx.Done():
		t.Fatal("the alert never reached the integration")
	}
	r1.stop()

	// The interrupted message was handed back (not left to its 30s
	// AckWait): the next dispatcher gets it at once.
	r2 := start(t, ctx, env.js, fast, newSlack(t, slackSrv, 0))
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := slackSrv.WaitMessages(wctx, 1); err != nil {
		t.Fatal(err)
	}
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	r2.stop()
}

// panicky is an integration that panics, to check that the dispatcher
// survives it and counts it as a failure.
type panicky struct{}

func (panicky) Name() string                              { return "panicky" }
func (panicky) Notify(context.Context, *wire.Alert) error { panic("boom") }

func TestPanickingIntegrationIsAFailure(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	out := newLines()
	r := start(t, ctx, env.js, fast, console.New(out), panicky{})
	env.publish(ctx, alert("R", "db-1"))
	if err := eventually(ctx, func() bool {
		return r.counter("mciv_notifier_notifications_total", "integration", "panicky", "result", "failure") >= 2
	}); err != nil {
		t.Fatal(err)
	}
	r.stop()
	if got := len(out.get()); got != 1 {
		t.Fatalf("console got %d lines while the other integration kept failing, want 1", got)
	}
}

func TestRunRejectsBadDurable(t *testing.T) {
	d := notifier.NewDispatcher(notifier.DispatcherConfig{Durable: "a.b"}, nil, nil, nil)
	if err := d.Run(context.Background(), nil); err == nil {
		t.Fatal("a durable name with a dot was accepted")
	}
}

func TestMetricsSurviveASecondDispatcherOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	out := newLines()
	notifier.NewDispatcher(notifier.DispatcherConfig{}, []notifier.Notifier{console.New(out)}, reg, nil)
	notifier.NewDispatcher(notifier.DispatcherConfig{}, []notifier.Notifier{console.New(out)}, reg, nil)
	n, err := testutil.GatherAndCount(reg, "mciv_notifier_notifications_total")
	if err != nil || n != 3 {
		t.Fatalf("notifications_total series = %d, %v; want 3 (console success, failure, deferred)", n, err)
	}
}

func TestRunStopsWhileTheStreamIsMissing(t *testing.T) {
	ctx := testCtx(t)
	js := startBareNATS(t, ctx, t.TempDir()).js
	// No EnsureStreams: Run keeps retrying until its context ends.
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	d := notifier.NewDispatcher(fast, nil, nil, nil)
	if err := d.Run(rctx, js); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v", err)
	}
}

// slow is an integration that takes a while, as Slack does when it asks us
// to wait out a rate limit, and records its calls.
type slow struct {
	d     time.Duration
	mu    sync.Mutex
	calls int
}

func (s *slow) Name() string { return "slow" }

func (s *slow) Notify(ctx context.Context, _ *wire.Alert) error {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.d):
		return nil
	}
}

func (s *slow) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestSlowDeliveryIsNotRedelivered(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	cfg := fast
	cfg.AckWait = 250 * time.Millisecond
	// The delivery takes five AckWaits. Without the in-progress notices
	// JetStream would redeliver the message meanwhile, to the second
	// replica sharing the durable.
	s1, s2 := &slow{d: 5 * cfg.AckWait}, &slow{d: 5 * cfg.AckWait}
	start(t, ctx, env.js, cfg, s1)
	start(t, ctx, env.js, cfg, s2)
	seq := env.publish(ctx, alert("Slow", "db-1"))
	info := env.waitAcked(ctx, notifier.DefaultDurable, seq)
	if calls := s1.count() + s2.count(); calls != 1 || info.NumRedelivered != 0 {
		t.Fatalf("%d deliveries to the integration, %d redelivered messages; want 1 and 0", calls, info.NumRedelivered)
	}
}

func TestMaxDeliverGivesUp(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	cfg := fast
	cfg.MaxDeliver = 2
	r := start(t, ctx, env.js, cfg, panicky{})
	seq := env.publish(ctx, alert("R", "db-1"))
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	r.stop()
	if got := r.counter("mciv_notifier_notifications_total", "integration", "panicky", "result", "failure"); got != 2 {
		t.Fatalf("%v attempts, want MaxDeliver = 2", got)
	}
}

func TestRunRejectsTwoIntegrationsWithOneName(t *testing.T) {
	out := newLines()
	d := notifier.NewDispatcher(fast, []notifier.Notifier{console.New(out), console.New(out)}, nil, nil)
	if err := d.Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "share the consumer") {
		t.Fatalf("Run = %v", err)
	}
}

func TestLaneDurable(t *testing.T) {
	if got := notifier.LaneDurable("mciv-notifier", "slack"); got != "mciv-notifier-slack" {
		t.Errorf("LaneDurable = %q", got)
	}
	if got := notifier.LaneDurable("d", "a.b c"); got != "d-a_b_c" {
		t.Errorf("LaneDurable = %q", got)
	}
}

// A slow integration does not hold up the others: each has its own lane.
func TestOneSlowIntegrationDelaysOnlyItself(t *testing.T) {
	ctx := testCtx(t)
	env := startNATS(t, ctx, t.TempDir())
	out := newLines()
	b := &blocking{entered: make(chan struct{})} // hangs until stopped
	start(t, ctx, env.js, fast, b, console.New(out))
	for i := range 5 {
		env.publish(ctx, alert(fmt.Sprintf("R%d", i), "db-1"))
	}
	if _, err := out.wait(ctx, 5); err != nil {
		t.Fatalf("the console waited for the hung integration: %v", err)
	}
}

// TestReadyOnceEveryConsumerIsBound: Ready fails while the alerts stream
// is missing (no consumer can be bound), names how many are, passes once
// every lane consumes, and fails again after Run returned.
func TestReadyOnceEveryConsumerIsBound(t *testing.T) {
	ctx := testCtx(t)
	js := startBareNATS(t, ctx, t.TempDir()).js
	d := notifier.NewDispatcher(fast, []notifier.Notifier{console.New(io.Discard), &slow{}}, nil, nil)
	if err := d.Ready(); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Ready before Run = %v", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(rctx, js) }()
	time.Sleep(200 * time.Millisecond) // Run is retrying: the stream is missing
	if err := d.Ready(); err == nil || !strings.Contains(err.Error(), "0 of 2 consumers") {
		t.Errorf("Ready without the stream = %v, want 0 of 2 consumers bound", err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := eventually(ctx, func() bool { return d.Ready() == nil }); err != nil {
		t.Fatalf("Ready never passed once the stream existed: %v (last: %v)", err, d.Ready())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := d.Ready(); err == nil {
		t.Error("Ready passes after Run returned")
	}
}
