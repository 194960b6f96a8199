package google

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mciv/mciv/notifier/speech"
	"github.com/mciv/mciv/notifier/tts"
	"github.com/mciv/mciv/notifier/tts/google/googletest"
)

// newEngine starts a fake and connects an engine to it.
func newEngine(t *testing.T, cfg Config) (*Engine, *googletest.Server) {
	t.Helper()
	fake := googletest.Start(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e, err := New(t.Context(), cfg, fake.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, fake
}

func TestRequestCarriesEverything(t *testing.T) {
	e, fake := newEngine(t, Config{Voice: "en-US-Neural2-F"})
	for _, tc := range []struct {
		name    string
		req     tts.Request
		enc     texttospeechpb.AudioEncoding
		rate    int32
		profile string
		check   func(a tts.Audio) error
	}{
		{"opus", tts.Request{Text: "Critical.", Format: tts.FormatOggOpus}, texttospeechpb.AudioEncoding_OGG_OPUS, 0, "", func(a tts.Audio) error {
			return magic(a.Data, "OggS")
		}},
		{"mp3", tts.Request{Text: "Critical.", Format: tts.FormatMP3, Rate: 1.25}, texttospeechpb.AudioEncoding_MP3, 0, "", func(a tts.Audio) error {
			return magic(a.Data, "ID3")
		}},
		{"linear16", tts.Request{Text: "Critical.", Format: tts.FormatWAV}, texttospeechpb.AudioEncoding_LINEAR16, 0, "", func(a tts.Audio) error {
			return tts.CheckWAV(a.Data, tts.FormatWAV)
		}},
		{"phone", tts.Request{Text: "Critical.", Format: tts.FormatMulaw8k}, texttospeechpb.AudioEncoding_MULAW, 8000, PhoneEffectsProfile, func(a tts.Audio) error {
			return tts.CheckWAV(a.Data, tts.FormatMulaw8k)
		}},
		{"ssml", tts.Request{Text: speech.SSML("Critical. Disk <sda> & journal."), SSML: true, Format: tts.FormatMP3}, texttospeechpb.AudioEncoding_MP3, 0, "", func(a tts.Audio) error {
			return magic(a.Data, "ID3")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fake.Calls()
			a, err := e.Synthesize(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if a.Engine != "google" || a.Format != tc.req.Format || a.MIMEType != tc.req.Format.MIMEType() {
				t.Errorf("audio %s from %q as %s", a.Format, a.Engine, a.MIMEType)
			}
			if err := tc.check(a); err != nil {
				t.Error(err)
			}
			reqs := fake.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("%d requests, want %d", len(reqs), before+1)
			}
			got := reqs[len(reqs)-1]
			if tc.req.SSML {
				if got.GetInput().GetSsml() != tc.req.Text || got.GetInput().GetText() != "" {
					t.Errorf("input %v, want the SSML", got.GetInput())
				}
			} else if got.GetInput().GetText() != tc.req.Text {
				t.Errorf("input %v, want text %q", got.GetInput(), tc.req.Text)
			}
			if got.GetVoice().GetName() != "en-US-Neural2-F" || got.GetVoice().GetLanguageCode() != "en-US" {
				t.Errorf("voice %v", got.GetVoice())
			}
			ac := got.GetAudioConfig()
			wantRate := tc.req.Rate
			if wantRate == 0 {
				wantRate = 1
			}
			if ac.GetAudioEncoding() != tc.enc || ac.GetSampleRateHertz() != tc.rate || ac.GetSpeakingRate() != wantRate {
				t.Errorf("audio config %v", ac)
			}
			if p := strings.Join(ac.GetEffectsProfileId(), ","); p != tc.profile {
				t.Errorf("effects profile %q, want %q", p, tc.profile)
			}
		})
	}
}

func magic(data []byte, prefix string) error {
	if !bytes.HasPrefix(data, []byte(prefix)) {
		return status.Errorf(codes.Internal, "audio starts %q, want %q", data[:min(len(data), 8)], prefix)
	}
	return nil
}

func TestVoiceSelection(t *testing.T) {
	for _, tc := range []struct {
		name                string
		cfg                 Config
		req                 tts.Request
		wantVoice, wantLang string
		wantRate            float64
	}{
		{"configured", Config{Voice: "en-GB-Neural2-A"}, tts.Request{}, "en-GB-Neural2-A", "en-GB", 1},
		{"request voice wins", Config{Voice: "en-GB-Neural2-A"}, tts.Request{Voice: "de-DE-Wavenet-B"}, "de-DE-Wavenet-B", "de-DE", 1},
		{"espeak voice ignored", Config{Voice: "en-GB-Neural2-A"}, tts.Request{Voice: "en-us+f3"}, "en-GB-Neural2-A", "en-GB", 1},
		{"other language drops configured voice", Config{Voice: "en-GB-Neural2-A"}, tts.Request{Language: "fr-FR"}, "", "fr-FR", 1},
		{"same language keeps voice", Config{Voice: "en-GB-Neural2-A"}, tts.Request{Language: "en-gb"}, "en-GB-Neural2-A", "en-GB", 1},
		{"no voice", Config{}, tts.Request{}, "", "en-US", 1},
		{"configured language", Config{Language: "nl-NL"}, tts.Request{}, "", "nl-NL", 1},
		{"rate clamped high", Config{}, tts.Request{Rate: 3}, "", "en-US", 2},
		{"rate clamped low", Config{}, tts.Request{Rate: 0.1}, "", "en-US", 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fake := newEngine(t, tc.cfg)
			tc.req.Text = "hello"
			if _, err := e.Synthesize(t.Context(), tc.req); err != nil {
				t.Fatal(err)
			}
			got := fake.Requests()[0]
			if got.GetVoice().GetName() != tc.wantVoice || got.GetVoice().GetLanguageCode() != tc.wantLang || got.GetAudioConfig().GetSpeakingRate() != tc.wantRate {
				t.Errorf("voice %v rate %v, want %q %q %v", got.GetVoice(), got.GetAudioConfig().GetSpeakingRate(), tc.wantVoice, tc.wantLang, tc.wantRate)
			}
		})
	}
}

func TestErrorsFailFast(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.PermissionDenied, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			e, fake := newEngine(t, Config{})
			fake.FailWith(code)
			start := time.Now()
			_, err := e.Synthesize(t.Context(), tts.Request{Text: "hello"})
			if status.Code(err) != code {
				t.Fatalf("err = %v, want code %s", err, code)
			}
			if !strings.HasPrefix(err.Error(), "google: synthesize: ") {
				t.Errorf("error %q lacks context", err)
			}
			// The library's default would retry Unavailable for five
			// minutes; this engine asks once.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if fake.Calls() != 1 {
				t.Errorf("%d calls, want 1 (no retries)", fake.Calls())
			}
			fake.FailWith(codes.OK)
			if _, err := e.Synthesize(t.Context(), tts.Request{Text: "hello"}); err != nil {
				t.Errorf("after recovery: %v", err)
			}
		})
	}
}

func TestHangBoundedByTimeout(t *testing.T) {
	e, fake := newEngine(t, Config{Timeout: 200 * time.Millisecond})
	fake.Hang(true)
	start := time.Now()
	_, err := e.Synthesize(t.Context(), tts.Request{Text: "hello"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with a 200ms timeout", d)
	}
}

func TestInvalid(t *testing.T) {
	e, fake := newEngine(t, Config{})
	if _, err := e.Synthesize(t.Context(), tts.Request{Text: strings.Repeat("x", MaxInputBytes+1)}); err == nil || !strings.Contains(err.Error(), "at most 5000") {
		t.Errorf("long text: %v", err)
	}
	if fake.Calls() != 0 {
		t.Error("a request over the limit was sent")
	}
	// Broken SSML is the API's InvalidArgument, which says why.
	_, err := e.Synthesize(t.Context(), tts.Request{Text: "<speak>unclosed", SSML: true})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "SSML") {
		t.Errorf("broken SSML: %v", err)
	}
}

func TestIsVoiceName(t *testing.T) {
	for name, want := range map[string]bool{
		"en-US-Neural2-F":      true,
		"cmn-CN-Wavenet-A":     true,
		"en-US-Chirp3-HD-Kore": true,
		"en-us+f3":             false,
		"en-us":                false,
		"":                     false,
		"en-US":                false,
	} {
		if IsVoiceName(name) != want {
			t.Errorf("IsVoiceName(%q) = %v", name, !want)
		}
	}
}

func TestCredentialsFileMissing(t *testing.T) {
	_, err := New(context.Background(), Config{CredentialsFile: "/nonexistent/key.json"})
	if err == nil || !strings.Contains(err.Error(), "google: ") {
		t.Errorf("err = %v, want a google: error about the file", err)
	}
}
