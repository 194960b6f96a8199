package espeak

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/ear"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/speech"
	"github.com/mciv/mciv/notifier/tts"
)

func newEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	testenv.RequireCommand(t, "espeak-ng", "sox")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// seconds returns the length of a WAV clip.
func seconds(t *testing.T, wav []byte) float64 {
	t.Helper()
	info, samples, err := tts.ParseWAV(wav)
	if err != nil {
		t.Fatal(err)
	}
	return float64(len(samples)) / float64(int(info.SampleRate)*int(info.Channels)*int(info.BitsPerSample/8))
}

func TestMissingEspeak(t *testing.T) {
	_, err := New(Config{Binary: "/nonexistent/espeak-ng"})
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "install espeak-ng") {
		t.Errorf("err = %v, want one that says to install espeak-ng", err)
	}
}

func TestFormats(t *testing.T) {
	e := newEngine(t, Config{})
	ctx := t.Context()
	for _, tc := range []struct {
		format tts.Format
		check  func(a tts.Audio) error
	}{
		{tts.FormatWAV, func(a tts.Audio) error { return tts.CheckWAV(a.Data, tts.FormatWAV) }},
		{tts.FormatMulaw8k, func(a tts.Audio) error { return tts.CheckWAV(a.Data, tts.FormatMulaw8k) }},
		{tts.FormatMP3, func(a tts.Audio) error {
			if !bytes.HasPrefix(a.Data, []byte("ID3")) && !(a.Data[0] == 0xff && a.Data[1]&0xe0 == 0xe0) {
				return errors.New("not MP3")
			}
			return nil
		}},
		{tts.FormatOggOpus, func(a tts.Audio) error {
			if !bytes.HasPrefix(a.Data, []byte("OggS")) {
				return errors.New("not Ogg")
			}
			want := "OpusHead"
			if a.Format == tts.FormatOggVorbis {
				want = "vorbis"
			}
			if !bytes.Contains(a.Data[:min(len(a.Data), 200)], []byte(want)) {
				return errors.New("no " + want + " header")
			}
			return nil
		}},
	} {
		t.Run(tc.format.String(), func(t *testing.T) {
			a, err := e.Synthesize(ctx, tts.Request{Text: "Critical alert on host d b 1", Format: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			if a.Engine != "espeak" || len(a.Data) < 100 {
				t.Fatalf("engine %q, %d bytes", a.Engine, len(a.Data))
			}
			if a.Format != tc.format && !(tc.format == tts.FormatOggOpus && a.Format == tts.FormatOggVorbis && e.opusenc == "") {
				t.Errorf("format %s, want %s", a.Format, tc.format)
			}
			if a.MIMEType != a.Format.MIMEType() || a.Ext != a.Format.Ext() {
				t.Errorf("MIME %q ext %q for %s", a.MIMEType, a.Ext, a.Format)
			}
			if err := tc.check(a); err != nil {
				t.Error(err)
			}
		})
	}
	t.Logf("formats this host can produce: %v", e.Formats(ctx))
}

func TestOggVorbisWithoutOpusenc(t *testing.T) {
	e := newEngine(t, Config{NoOpusenc: true})
	a, err := e.Synthesize(t.Context(), tts.Request{Text: "hello", Format: tts.FormatOggOpus})
	if err != nil {
		t.Fatal(err)
	}
	if a.Format != tts.FormatOggVorbis || a.MIMEType != "audio/ogg" || !bytes.Contains(a.Data[:100], []byte("vorbis")) {
		t.Errorf("got %s %s", a.Format, a.MIMEType)
	}
	for _, f := range e.Formats(t.Context()) {
		if f == tts.FormatOggOpus {
			t.Error("Formats lists Ogg Opus without opusenc")
		}
	}
}

func TestOpusWithOpusenc(t *testing.T) {
	testenv.RequireCommand(t, "opusenc")
	e := newEngine(t, Config{})
	a, err := e.Synthesize(t.Context(), tts.Request{Text: "hello", Format: tts.FormatOggOpus})
	if err != nil {
		t.Fatal(err)
	}
	if a.Format != tts.FormatOggOpus || !bytes.Contains(a.Data[:100], []byte("OpusHead")) {
		t.Errorf("got %s", a.Format)
	}
}

func TestRateAndPhoneLength(t *testing.T) {
	e := newEngine(t, Config{})
	length := func(rate float64, f tts.Format) float64 {
		a, err := e.Synthesize(t.Context(), tts.Request{Text: "Critical. Query latency 850 milliseconds on host d b 1.", Rate: rate, Format: f})
		if err != nil {
			t.Fatal(err)
		}
		return seconds(t, a.Data)
	}
	slow, normal, fast := length(0.6, tts.FormatWAV), length(1, tts.FormatWAV), length(1.6, tts.FormatWAV)
	if !(slow > normal*1.3 && normal > fast*1.3) {
		t.Errorf("lengths at rate 0.6, 1, 1.6: %.2fs %.2fs %.2fs", slow, normal, fast)
	}
	if phone := length(1, tts.FormatMulaw8k); phone < normal*0.95 || phone > normal*1.05 {
		t.Errorf("µ-law clip %.2fs, WAV %.2fs", phone, normal)
	}
}

func TestVoices(t *testing.T) {
	e := newEngine(t, Config{})
	ctx := t.Context()
	for _, voice := range []string{"en-us+f3", "en-gb", "no-such-voice", "mb-en1", "English_(America)"} {
		a, err := e.Synthesize(ctx, tts.Request{Text: "hello", Voice: voice, Format: tts.FormatWAV})
		if err != nil {
			t.Errorf("voice %q: %v", voice, err)
			continue
		}
		if seconds(t, a.Data) < 0.2 {
			t.Errorf("voice %q: clip too short", voice)
		}
	}
}

func TestSSMLIsNotReadOut(t *testing.T) {
	e := newEngine(t, Config{})
	plain, err := e.Synthesize(t.Context(), tts.Request{Text: "Disk <sda> & journal", Format: tts.FormatWAV})
	if err != nil {
		t.Fatal(err)
	}
	ssml, err := e.Synthesize(t.Context(), tts.Request{Text: speech.SSML("Disk <sda> & journal"), SSML: true, Format: tts.FormatWAV})
	if err != nil {
		t.Fatal(err)
	}
	// Read as text, the markup of the SSML document would take seconds
	// ("less than speak greater than less than s ...").
	if p, s := seconds(t, plain.Data), seconds(t, ssml.Data); s > p*1.5+0.5 {
		t.Errorf("SSML clip %.2fs, plain %.2fs: markup read out", s, p)
	}
}

func TestTextCannotBeAnOption(t *testing.T) {
	e := newEngine(t, Config{})
	a, err := e.Synthesize(t.Context(), tts.Request{Text: "--version; rm -rf / $(id)", Format: tts.FormatWAV})
	if err != nil {
		t.Fatal(err)
	}
	if err := tts.CheckWAV(a.Data, tts.FormatWAV); err != nil {
		t.Error(err)
	}
}

func TestCancelled(t *testing.T) {
	e := newEngine(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start := time.Now()
	_, err := e.Synthesize(ctx, tts.Request{Text: strings.Repeat("a long text ", 500), Format: tts.FormatMP3})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v after cancel", d)
	}
}

func TestParseSoxFormats(t *testing.T) {
	help := "SoX v14\n\nAUDIO FILE FORMATS: 8svx aif mp3 ogg vorbis wav\nPLAYLIST FORMATS: m3u pls\n"
	f := parseSoxFormats(help)
	if !f["mp3"] || !f["ogg"] || !f["wav"] || f["m3u"] || f["opus"] {
		t.Errorf("parsed %v", f)
	}
}

// TestHeardByEar synthesizes an alert and checks with pocketsphinx's
// keyword spotting that its severity and "alert" are heard, and that an
// unrelated sentence does not produce them.
func TestHeardByEar(t *testing.T) {
	e := newEngine(t, Config{})
	ear.Require(t)
	ctx := t.Context()
	keywords := []string{"critical", "alert"}
	for _, f := range []tts.Format{tts.FormatWAV, tts.FormatMP3} {
		a, err := e.Synthesize(ctx, tts.Request{Text: "Critical alert on host d b 1", Format: f})
		if err != nil {
			t.Fatal(err)
		}
		heard, raw := ear.Hear(t, a.Data, a.Ext, keywords...)
		t.Logf("%s: pocketsphinx heard %q", f, raw)
		for _, k := range keywords {
			if heard[k] == 0 {
				t.Errorf("%s: %q not heard (heard %q)", f, k, raw)
			}
		}
	}
	for _, text := range []string{"the weather is nice today", "please buy milk and bread on the way home"} {
		a, err := e.Synthesize(ctx, tts.Request{Text: text, Format: tts.FormatWAV})
		if err != nil {
			t.Fatal(err)
		}
		heard, raw := ear.Hear(t, a.Data, a.Ext, keywords...)
		t.Logf("%q: pocketsphinx heard %q", text, raw)
		if len(heard) != 0 {
			t.Errorf("%q: heard %q, want nothing", text, raw)
		}
	}
}

// TestAlertTextHeardByEar speaks what speech.Text makes of a real alert.
func TestAlertTextHeardByEar(t *testing.T) {
	e := newEngine(t, Config{})
	ear.Require(t)
	text := speech.Text(&wire.Alert{
		Rule: "QueryLatencyAnomaly", State: wire.StateFiring,
		Labels: map[string]string{"severity": "critical", "host": "db-1", "cluster": "payments"},
		Signal: "db_query_seconds", Stat: "p99", Value: 0.85, Baseline: 0.14,
	})
	a, err := e.Synthesize(t.Context(), tts.Request{Text: text, Format: tts.FormatWAV})
	if err != nil {
		t.Fatal(err)
	}
	heard, raw := ear.Hear(t, a.Data, a.Ext, "critical", "weather")
	t.Logf("%q: pocketsphinx heard %q", text, raw)
	if heard["critical"] == 0 || heard["weather"] != 0 {
		t.Errorf("heard %q, want critical and not weather", raw)
	}
}
