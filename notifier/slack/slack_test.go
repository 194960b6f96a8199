package slack

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "xoxb-1234-secret-token"

func testAlert() *wire.Alert {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &wire.Alert{
		V: wire.Version, Fingerprint: "fp1", Rule: "TCPRetransmitRateHigh", Group: "network",
		State:  wire.StateFiring,
		Labels: map[string]string{"cluster": "default", "host": "db-1", "severity": "warning", "peer": "10.0.0.7"},
		Annotations: map[string]string{
			"summary":     "TCP retransmits on db-1 at 12.3/s",
			"description": "Retransmits to 10.0.0.7 are > 5/s; packet loss <on the path>?",
		},
		Signal: "tcp_retransmits_total", Stat: "rate", Value: 12.3, Threshold: 5,
		StartsAt: at, At: at,
	}
}

// recorder stands in for the notifier's wait: it records how long it was
// asked to wait and returns at once.
type recorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recorder) wait(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, d)
	return ctx.Err()
}

func (r *recorder) got() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.waits)
}

// newTest returns a notifier posting to a fake Slack, with its wait
// recorded, and the buffer its log goes to.
func newTest(t *testing.T, cfg Config) (*Notifier, *slacktest.Server, *recorder, *bytes.Buffer) {
	t.Helper()
	srv := slacktest.New(t, token)
	if cfg.Token == "" {
		cfg.Token = token
	}
	if cfg.Channel == "" {
		cfg.Channel = "#oncall"
	}
	if cfg.APIURL == "" {
		cfg.APIURL = srv.URL()
	}
	var logs bytes.Buffer
	n, err := New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	n.call.wait = rec.wait
	t.Cleanup(func() {
		if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), "secret") {
			t.Errorf("the log shows the token:\n%s", logs.String())
		}
	})
	return n, srv, rec, &logs
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNotifyPostsReadableMessage(t *testing.T) {
	n, srv, _, _ := newTest(t, Config{})
	ctx := testCtx(t)
	if err := n.Notify(ctx, testAlert()); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Channel != "#oncall" || m.Method != "chat.postMessage" {
		t.Fatalf("posted %+v", m)
	}
	for _, want := range []string{"FIRING", "TCPRetransmitRateHigh", "db-1", "12.3", "threshold 5", "cluster default", "TCP retransmits on db-1 at 12.3/s"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text %q lacks %q", m.Text, want)
		}
	}
	blocks := m.BlockText()
	for _, want := range []string{
		"FIRING: TCPRetransmitRateHigh on db-1",
		"*TCP retransmits on db-1 at 12.3/s*",
		"packet loss &lt;on the path&gt;?", // mrkdwn-escaped
		"*Severity*\nwarning", "*State*\nFIRING", "*Host*\ndb-1", "*Cluster*\ndefault",
		"*Rule*\nTCPRetransmitRateHigh (group network)",
		"*Value*\n12.3 (threshold 5)", "*Signal*\nrate of tcp_retransmits_total",
		"peer=10.0.0.7", "<!date^1772366400^",
	} {
		if !strings.Contains(blocks, want) {
			t.Errorf("blocks lack %q:\n%s", want, blocks)
		}
	}
}

func TestResolvedMessage(t *testing.T) {
	n, srv, _, _ := newTest(t, Config{})
	a := testAlert()
	a.State, a.Value, a.EndsAt = wire.StateResolved, 1.2, a.StartsAt.Add(5*time.Minute)
	if err := n.Notify(testCtx(t), a); err != nil {
		t.Fatal(err)
	}
	m := srv.Messages()[0]
	if !strings.HasPrefix(m.Text, "[RESOLVED] TCPRetransmitRateHigh on db-1") || !strings.Contains(m.Text, "value 1.2") {
		t.Errorf("text %q", m.Text)
	}
	if b := m.BlockText(); !strings.Contains(b, ":large_green_circle: RESOLVED") || !strings.Contains(b, "resolved <!date^") {
		t.Errorf("blocks:\n%s", b)
	}
}

func TestRateLimitedThenPostedOnce(t *testing.T) {
	n, srv, rec, _ := newTest(t, Config{})
	srv.FailNext(1, http.StatusTooManyRequests, 3*time.Second)
	if err := n.Notify(testCtx(t), testAlert()); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Messages()); got != 1 {
		t.Fatalf("%d messages, want exactly 1", got)
	}
	if got := statuses(srv); !slices.Equal(got, []int{429, 200}) {
		t.Fatalf("calls answered %v", got)
	}
	if got := rec.got(); !slices.Equal(got, []time.Duration{3 * time.Second}) {
		t.Fatalf("waited %v, want Slack's Retry-After of 3s", got)
	}
}

func TestServerErrorRetriedThenPostedOnce(t *testing.T) {
	n, srv, rec, _ := newTest(t, Config{RetryBackoff: 100 * time.Millisecond})
	srv.FailNext(2, http.StatusInternalServerError, 0)
	if err := n.Notify(testCtx(t), testAlert()); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Messages()); got != 1 {
		t.Fatalf("%d messages, want exactly 1", got)
	}
	if got := statuses(srv); !slices.Equal(got, []int{500, 500, 200}) {
		t.Fatalf("calls answered %v", got)
	}
	if got := rec.got(); !slices.Equal(got, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}) {
		t.Fatalf("waited %v, want exponential backoff", got)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	n, srv, _, _ := newTest(t, Config{MaxAttempts: 3})
	srv.FailNext(10, http.StatusServiceUnavailable, 0)
	err := n.Notify(testCtx(t), testAlert())
	if err == nil || !strings.Contains(err.Error(), "failed 3 times") {
		t.Fatalf("err = %v", err)
	}
	if got := len(srv.Requests()); got != 3 {
		t.Fatalf("%d calls, want 3", got)
	}
}

func TestRateLimitLongerThanContextIsHandedBack(t *testing.T) {
	n, srv, rec, _ := newTest(t, Config{})
	srv.FailNext(1, http.StatusTooManyRequests, 30*time.Second)
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer cancel()
	err := n.Notify(ctx, testAlert())
	ra, ok := errors.AsType[interface {
		error
		RetryAfter() time.Duration
	}](err)
	if !ok || ra.RetryAfter() != 30*time.Second {
		t.Fatalf("err = %v, want one asking for 30s", err)
	}
	if len(rec.got()) != 0 || len(srv.Messages()) != 0 {
		t.Fatalf("waited %v / posted %d", rec.got(), len(srv.Messages()))
	}
}

func TestSlackErrorsAreNotRetried(t *testing.T) {
	n, srv, _, _ := newTest(t, Config{Token: "xoxb-9999-other-secret"})
	err := n.Notify(testCtx(t), testAlert())
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || !strings.Contains(err.Error(), "#oncall") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows the token: %v", err)
	}
	if got := len(srv.Requests()); got != 1 {
		t.Fatalf("%d calls for a non-retryable error", got)
	}
}

func TestCheck(t *testing.T) {
	n, _, _, _ := newTest(t, Config{})
	if err := n.Check(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	bad, _, _, _ := newTest(t, Config{Token: "xoxb-9999-other-secret"})
	if err := bad.Check(testCtx(t)); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Check with a wrong token: %v", err)
	}
}

func TestAPIURLWithoutPath(t *testing.T) {
	srv := slacktest.New(t, token)
	base := strings.TrimSuffix(srv.URL(), "/api/") // http://127.0.0.1:port
	n, err := New(Config{Token: token, Channel: "C0123456", APIURL: base}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(testCtx(t), testAlert()); err != nil {
		t.Fatal(err)
	}
	if len(srv.Messages()) != 1 {
		t.Fatal("no message")
	}
}

func TestAPIURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "https://slack.com/api/",
		"http://127.0.0.1:1234":      "http://127.0.0.1:1234/api/",
		"http://127.0.0.1:1234/":     "http://127.0.0.1:1234/api/",
		"http://127.0.0.1:1234/api":  "http://127.0.0.1:1234/api/",
		"http://127.0.0.1:1234/api/": "http://127.0.0.1:1234/api/",
		"https://proxy/slack/api":    "https://proxy/slack/api/",
	} {
		if got, err := apiURL(in); err != nil || got != want {
			t.Errorf("apiURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:1234", "ftp://host/", "http://", "http://h/api/?x=1", "http://u:pw@h/%zz"} {
		got, err := apiURL(bad)
		if err == nil {
			t.Errorf("apiURL(%q) = %q, want an error", bad, got)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("apiURL error shows a password: %v", err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{Channel: "#c"}, nil); err == nil {
		t.Error("no token accepted")
	}
	if _, err := New(Config{Token: token}, nil); err == nil {
		t.Error("no channel accepted")
	}
	cfg := Config{Token: token, Channel: "#c"}
	if s := cfg.String(); strings.Contains(s, "secret") || !strings.Contains(s, "xoxb-***") {
		t.Errorf("Config.String = %q", s)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "slack", cfg)
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("slog shows the token: %s", buf.String())
	}
}

func TestLongAnnotationsAreTruncatedToSlackLimits(t *testing.T) {
	n, srv, _, _ := newTest(t, Config{})
	a := testAlert()
	a.Rule = strings.Repeat("R", 200)
	a.Annotations["description"] = strings.Repeat("long & noisy ", 500)
	for i := range 20 {
		a.Labels[strings.Repeat("l", 5)+string(rune('a'+i))] = strings.Repeat("v", 200)
	}
	// slacktest rejects what Slack would reject (invalid_blocks).
	if err := n.Notify(testCtx(t), a); err != nil {
		t.Fatal(err)
	}
	if len(srv.Messages()) != 1 {
		t.Fatal("no message")
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleep = %v", err)
	}
	if err := sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("sleep = %v", err)
	}
}

func statuses(srv *slacktest.Server) []int {
	var s []int
	for _, r := range srv.Requests() {
		s = append(s, r.Status)
	}
	return s
}
