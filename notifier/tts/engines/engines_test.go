package engines

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/mciv/mciv/internal/lab/ear"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/notifier/tts"
	"github.com/mciv/mciv/notifier/tts/espeak"
	"github.com/mciv/mciv/notifier/tts/google"
	"github.com/mciv/mciv/notifier/tts/google/googletest"
)

func TestParseNames(t *testing.T) {
	for in, want := range map[string][]string{
		"google,espeak":     {"google", "espeak"},
		" Espeak , google ": {"espeak", "google"},
		"espeak":            {"espeak"},
		"espeak,":           {"espeak"},
	} {
		got, err := ParseNames(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseNames(%q) = %v, %v", in, got, err)
		}
	}
	for in, want := range map[string]string{
		"":               "no engine",
		"polly":          `unknown engine "polly" (known: google, espeak)`,
		"espeak,espeak":  "twice",
		"google, ,nope ": "unknown engine",
	} {
		if _, err := ParseNames(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseNames(%q) error = %v, want %q", in, err, want)
		}
	}
}

// chain builds "google,espeak" with Google pointed at a fake.
func chain(t *testing.T, cfg Config) (*tts.Chain, *googletest.Server) {
	t.Helper()
	testenv.RequireCommand(t, "espeak-ng", "sox")
	fake := googletest.Start(t)
	cfg.GoogleOptions = fake.ClientOptions()
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := NewChain(t.Context(), []string{google.Name, espeak.Name}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, fake
}

func TestGoogleSpeaksAndIsCached(t *testing.T) {
	c, fake := chain(t, Config{CacheDir: t.TempDir()})
	req := tts.Request{Text: "Critical alert on host d b 1", Format: tts.FormatMulaw8k}
	for range 2 {
		a, err := c.Synthesize(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if a.Engine != "google" || a.Format != tts.FormatMulaw8k {
			t.Fatalf("spoken by %q as %s", a.Engine, a.Format)
		}
	}
	if fake.Calls() != 1 {
		t.Errorf("Google asked %d times, want 1", fake.Calls())
	}
}

func TestGoogleDownEspeakSpeaks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(*googletest.Server)
	}{
		{"unavailable", func(s *googletest.Server) { s.FailWith(codes.Unavailable) }},
		{"permission denied", func(s *googletest.Server) { s.FailWith(codes.PermissionDenied) }},
		{"hangs", func(s *googletest.Server) { s.Hang(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fake := chain(t, Config{Timeouts: map[string]time.Duration{google.Name: 500 * time.Millisecond}})
			tc.fault(fake)
			start := time.Now()
			a, err := c.Synthesize(t.Context(), tts.Request{Text: "Critical alert on host d b 1", Format: tts.FormatWAV})
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if a.Engine != "espeak" {
				t.Fatalf("spoken by %q, want espeak", a.Engine)
			}
			if took > 10*time.Second {
				t.Errorf("fallback took %v: Google's failure was not bounded", took)
			}
			if fake.Calls() != 1 {
				t.Errorf("Google asked %d times, want once (no retries)", fake.Calls())
			}
			t.Logf("espeak spoke %d bytes after %v", len(a.Data), took)
			if tc.name == "unavailable" {
				ear.Require(t)
				heard, raw := ear.Hear(t, a.Data, a.Ext, "critical", "alert")
				t.Logf("pocketsphinx heard %q", raw)
				if heard["critical"] == 0 || heard["alert"] == 0 {
					t.Errorf("fallback clip: heard %q, want critical and alert", raw)
				}
			}
		})
	}
}

func TestNewChainErrors(t *testing.T) {
	_, err := NewChain(t.Context(), []string{"espeak"}, Config{Espeak: espeak.Config{Binary: "/nonexistent/espeak-ng"}})
	if !errors.Is(err, espeak.ErrNotInstalled) {
		t.Errorf("err = %v, want espeak.ErrNotInstalled", err)
	}
	if _, err := NewChain(t.Context(), []string{"polly"}, Config{}); err == nil {
		t.Error("unknown engine accepted")
	}
	if _, err := NewChain(t.Context(), nil, Config{}); err == nil {
		t.Error("empty chain accepted")
	}
}
