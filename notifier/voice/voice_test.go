package voice

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/mciv/mciv/internal/lab/ear"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/tts"
	"github.com/mciv/mciv/notifier/tts/engines"
	"github.com/mciv/mciv/notifier/tts/espeak"
	"github.com/mciv/mciv/notifier/tts/google"
	"github.com/mciv/mciv/notifier/tts/google/googletest"
)

// fakeEngine speaks "audio:<text>" or fails.
type fakeEngine struct {
	mu    sync.Mutex
	texts []string
	err   error
}

func (f *fakeEngine) Name() string { return "fake" }

func (f *fakeEngine) Synthesize(_ context.Context, req tts.Request) (tts.Audio, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.texts = append(f.texts, req.Text)
	if f.err != nil {
		return tts.Audio{}, f.err
	}
	return tts.NewAudio([]byte("audio:"+req.Text), tts.FormatOggOpus, "fake"), nil
}

// fakeThread records uploads and replies.
type fakeThread struct {
	mu      sync.Mutex
	uploads []upload
	replies []string
	err     error
}

type upload struct {
	fingerprint, filename, title string
	data                         []byte
}

func (f *fakeThread) PostThreadReply(_ context.Context, fp, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies = append(f.replies, fp+": "+text)
	return f.err
}

func (f *fakeThread) UploadToThread(_ context.Context, fp, filename string, data []byte, title string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.uploads = append(f.uploads, upload{fp, filename, title, data})
	return nil
}

var t0 = time.Date(2026, 11, 25, 3, 4, 5, 0, time.UTC)

func alert(sev string, state wire.AlertState) *wire.Alert {
	return &wire.Alert{
		Fingerprint: "0123456789abcdef0123",
		Rule:        "QueryLatency",
		State:       state,
		Labels:      map[string]string{"severity": sev, "host": "billing-2", "cluster": "payments"},
		Signal:      "db_query_seconds",
		Stat:        "p99",
		Value:       0.85,
		Threshold:   0.5,
		Baseline:    0.14,
		StartsAt:    t0,
		At:          t0,
	}
}

func newNotifier(t *testing.T, opts Options) *Notifier {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0.Add(time.Minute) }
	}
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSpeaksCriticalFiringOnly(t *testing.T) {
	eng := &fakeEngine{}
	th := &fakeThread{}
	var out bytes.Buffer
	n := newNotifier(t, Options{Engine: eng, Thread: th, Out: &out})
	for _, a := range []*wire.Alert{
		alert("warning", wire.StateFiring),
		alert("critical", wire.StateResolved),
		alert("", wire.StateFiring),
	} {
		if err := n.Notify(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	if len(eng.texts) != 0 || out.Len() != 0 || len(th.uploads) != 0 {
		t.Fatalf("spoke %q, printed %q: want nothing", eng.texts, out.String())
	}

	a := alert("Critical", wire.StateFiring)
	if err := n.Notify(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if len(eng.texts) != 1 || !strings.HasPrefix(eng.texts[0], "Critical.") || !strings.Contains(eng.texts[0], "billing 2") {
		t.Fatalf("spoke %q", eng.texts)
	}
	path := filepath.Join(n.opts.Dir, "QueryLatency-0123456789abcdef-20261125T030405Z.ogg")
	if got, err := os.ReadFile(path); err != nil || string(got) != "audio:"+eng.texts[0] {
		t.Fatalf("clip file %s: %q, %v", path, got, err)
	}
	if !strings.Contains(out.String(), path) || !strings.Contains(out.String(), "CRITICAL QueryLatency") {
		t.Errorf("console: %q, want the clip's path", out.String())
	}
	if len(th.uploads) != 1 || th.uploads[0].fingerprint != a.Fingerprint || th.uploads[0].filename != filepath.Base(path) ||
		!strings.Contains(th.uploads[0].title, "Critical.") {
		t.Errorf("uploads: %+v", th.uploads)
	}

	// A redelivery rewrites nothing and prints nothing, but uploads again
	// (the dispatcher only redelivers when the upload failed).
	out.Reset()
	if err := n.Notify(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("redelivery printed %q", out.String())
	}
}

func TestConfiguredSeveritiesAndTemplate(t *testing.T) {
	eng := &fakeEngine{}
	n := newNotifier(t, Options{Engine: eng, Severities: []string{"warning", "page"}})
	a := alert("page", wire.StateFiring)
	a.Annotations = map[string]string{"voice": "Wake up. {{.Spoken.Host}} is slow."}
	if err := n.Notify(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(t.Context(), alert("critical", wire.StateFiring)); err != nil {
		t.Fatal(err)
	}
	if len(eng.texts) != 1 || eng.texts[0] != "Wake up. billing 2 is slow." {
		t.Fatalf("spoke %q", eng.texts)
	}
}

func TestFailuresAreRetriedWhileFresh(t *testing.T) {
	eng := &fakeEngine{err: errors.New("engine down")}
	now := t0.Add(time.Minute)
	n := newNotifier(t, Options{Engine: eng, Now: func() time.Time { return now }})
	a := alert("critical", wire.StateFiring)
	if err := n.Notify(t.Context(), a); err == nil || !strings.Contains(err.Error(), "engine down") {
		t.Fatalf("Notify = %v, want the engine's error (the dispatcher retries)", err)
	}
	now = t0.Add(DefaultMaxAge + time.Second)
	if err := n.Notify(t.Context(), a); err != nil {
		t.Fatalf("Notify of an old alert = %v, want nil (given up)", err)
	}

	eng.err = nil
	th := &fakeThread{err: errors.New("no thread yet")}
	now = t0
	n = newNotifier(t, Options{Engine: eng, Thread: th, Now: func() time.Time { return now }})
	if err := n.Notify(t.Context(), a); err == nil || !strings.Contains(err.Error(), "no thread yet") {
		t.Fatalf("Notify = %v, want the upload's error", err)
	}
}

// hangingEngine never answers.
type hangingEngine struct{}

func (hangingEngine) Name() string { return "hang" }
func (hangingEngine) Synthesize(ctx context.Context, _ tts.Request) (tts.Audio, error) {
	<-ctx.Done()
	return tts.Audio{}, ctx.Err()
}

func TestTimeoutBoundsNotify(t *testing.T) {
	n := newNotifier(t, Options{Engine: hangingEngine{}, Timeout: 50 * time.Millisecond})
	err := n.Notify(t.Context(), alert("critical", wire.StateFiring))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Notify = %v, want a deadline error", err)
	}
}

// TestGoogleFallsBackToEspeak runs the real Google client against the fake
// gRPC server, then makes the fake fail: espeak-ng speaks the alert.
func TestGoogleFallsBackToEspeak(t *testing.T) {
	testenv.RequireCommand(t, "espeak-ng", "sox")
	fake := googletest.Start(t)
	chain, err := engines.NewChain(t.Context(), []string{google.Name, espeak.Name}, engines.Config{
		Google:        google.Config{Timeout: 2 * time.Second},
		GoogleOptions: fake.ClientOptions(),
		NoCache:       true,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	th := &fakeThread{}
	n := newNotifier(t, Options{Engine: chain, Thread: th, Format: tts.FormatMP3})
	a := alert("critical", wire.StateFiring)
	clip, err := n.Speak(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Audio.Engine != google.Name || fake.Calls() != 1 {
		t.Fatalf("spoken by %s after %d calls to the fake, want google", clip.Audio.Engine, fake.Calls())
	}
	if !strings.Contains(fake.Requests()[0].GetInput().GetText(), "billing 2") {
		t.Errorf("google was asked to say %v", fake.Requests()[0].GetInput())
	}

	fake.FailWith(codes.Unavailable)
	a.StartsAt = a.StartsAt.Add(time.Hour) // another firing: another clip
	clip, err = n.Speak(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Audio.Engine != espeak.Name || len(th.uploads) != 2 {
		t.Fatalf("spoken by %s, %d uploads; want espeak and 2", clip.Audio.Engine, len(th.uploads))
	}
	if filepath.Ext(clip.Path) != ".mp3" {
		t.Errorf("clip %s, want .mp3", clip.Path)
	}
}

// TestEspeakHeardByEar speaks a critical alert with espeak-ng for real and
// listens with pocketsphinx: the severity and the host's name are heard,
// and an unrelated word is not.
func TestEspeakHeardByEar(t *testing.T) {
	testenv.RequireCommand(t, "espeak-ng", "sox")
	ear.Require(t)
	chain, err := engines.NewChain(t.Context(), []string{espeak.Name}, engines.Config{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	n := newNotifier(t, Options{Engine: chain, Format: tts.FormatWAV})
	clip, err := n.Speak(t.Context(), alert("critical", wire.StateFiring))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(clip.Path)
	if err != nil {
		t.Fatal(err)
	}
	heard, raw := ear.Hear(t, data, filepath.Ext(clip.Path), "critical", "billing", "weather")
	t.Logf("said %q; pocketsphinx heard %q", clip.Text, raw)
	if heard["critical"] == 0 || heard["billing"] == 0 {
		t.Errorf("heard %q, want the severity (critical) and the host (billing)", raw)
	}
	if heard["weather"] != 0 {
		t.Errorf("heard %q, which has weather in it: the ear hears things", raw)
	}
}

// finderThread is a fakeThread that knows whether the thread exists.
type finderThread struct {
	fakeThread
	exists bool
}

func (f *finderThread) HasThread(context.Context, string) (bool, error) { return f.exists, nil }

func TestWaitsForTheThread(t *testing.T) {
	eng := &fakeEngine{}
	th := &finderThread{}
	var out bytes.Buffer
	n := newNotifier(t, Options{Engine: eng, Thread: th, Out: &out})
	a := alert("critical", wire.StateFiring)
	err := n.Notify(t.Context(), a)
	var wait *NoThreadYet
	if !errors.As(err, &wait) || wait.RetryAfter() <= 0 {
		t.Fatalf("Notify = %v, want NoThreadYet with a delay", err)
	}
	if len(th.uploads) != 0 || !strings.Contains(out.String(), ".ogg") {
		t.Fatalf("uploads %d, console %q: want the clip written but not uploaded", len(th.uploads), out.String())
	}
	th.exists = true
	if err := n.Notify(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if len(th.uploads) != 1 || strings.Count(out.String(), ".ogg") != 1 {
		t.Errorf("uploads %d, console %q", len(th.uploads), out.String())
	}
}
