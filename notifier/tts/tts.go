// Package tts turns text into speech audio for Marvel, mciv's notifier: a
// voice clip posted beside a Slack alert, or the audio of a phone call.
//
// An [Engine] synthesizes one [Request]. Engines live in subpackages
// (notifier/tts/google for Google Cloud Text-to-Speech, notifier/tts/espeak
// for the offline espeak-ng); notifier/tts/engines builds them by name. A
// [Chain] asks its engines in order, each within its own timeout, so that
// a clip is still spoken when the preferred engine is down, and keeps clips
// in a [Cache] so that a repeated alert (phone escalation) is synthesized
// once.
package tts

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Engine is one text-to-speech engine.
//
// Synthesize must be safe for concurrent use and must return when ctx
// ends. It returns audio in req.Format, or, when it cannot produce that
// format, in the nearest one it can (Audio.Format says which; see
// FormatOggVorbis), or an error.
type Engine interface {
	// Name identifies the engine in logs, metrics and errors ("google",
	// "espeak").
	Name() string
	// Synthesize speaks req.
	Synthesize(ctx context.Context, req Request) (Audio, error)
}

// Request is what to say and how.
type Request struct {
	// Text is plain text, or an SSML document when SSML is set (see
	// speech.SSML).
	Text string
	SSML bool
	// Voice is an engine-specific voice name ("en-US-Neural2-F" for
	// Google, "en-us+f3" for espeak-ng). Empty uses each engine's
	// configured voice. An engine that does not know the voice uses its
	// configured voice for Language instead, so one request can go down a
	// chain of different engines.
	Voice string
	// Language is a BCP 47 language tag ("en-US"); empty means the
	// engine's configured language.
	Language string
	// Rate is the speaking rate relative to the engine's normal speed
	// (1 normal, 0.8 slower, 1.25 faster); 0 means 1. Engines clamp it to
	// what they support.
	Rate float64
	// Format is the audio format wanted; the zero value means
	// FormatOggOpus.
	Format Format
}

// Normalize returns req with defaults filled in (Format, Rate) and checks
// what every engine needs: some text and a known format.
func (r Request) Normalize() (Request, error) {
	if r.Format == FormatUnspecified {
		r.Format = FormatOggOpus
	}
	if r.Rate == 0 {
		r.Rate = 1
	}
	if strings.TrimSpace(r.Text) == "" {
		return r, errors.New("tts: nothing to say: empty text")
	}
	if !r.Format.valid() {
		return r, fmt.Errorf("tts: unknown audio format %d", int(r.Format))
	}
	if r.Rate < 0 {
		return r, fmt.Errorf("tts: negative speaking rate %g", r.Rate)
	}
	return r, nil
}

// Audio is a synthesized clip.
type Audio struct {
	// Data is the whole file: a container with its header (Ogg, MP3, WAV).
	Data []byte
	// Format is what Data holds; it can differ from the requested format
	// only as documented on the engine (FormatOggVorbis for FormatOggOpus).
	Format Format
	// MIMEType and Ext describe Data for an upload or a file name:
	// "audio/ogg" and ".ogg".
	MIMEType string
	Ext      string
	// Engine is the name of the engine that spoke it.
	Engine string
}

// NewAudio returns an Audio of format f with MIMEType and Ext filled in.
func NewAudio(data []byte, f Format, engine string) Audio {
	return Audio{Data: data, Format: f, MIMEType: f.MIMEType(), Ext: f.Ext(), Engine: engine}
}

// Format is an audio file format.
type Format int

// Audio formats. The phone format is a WAV container because that is what
// Google returns for MULAW and what sox writes; use [ParseWAV] to get at the
// raw G.711 samples for RTP.
const (
	FormatUnspecified Format = iota
	// FormatOggOpus is Opus in an Ogg container: small, good quality,
	// played by browsers and Slack.
	FormatOggOpus
	// FormatMP3 is MPEG-1/2 Layer III.
	FormatMP3
	// FormatWAV is 16-bit signed little-endian PCM (LINEAR16) in a WAV
	// container, at the engine's sample rate.
	FormatWAV
	// FormatMulaw8k is G.711 µ-law, 8 kHz, mono, in a WAV container: the
	// audio of a phone call.
	FormatMulaw8k
	// FormatOggVorbis is Vorbis in an Ogg container. Nobody asks for it:
	// an engine that cannot encode Opus returns it for FormatOggOpus (same
	// container and MIME type, played by the same players).
	FormatOggVorbis
)

// formatInfo describes a format.
type formatInfo struct {
	name, mime, ext string
}

// formats describes every format (a constant table, never changed).
var formats = map[Format]formatInfo{
	FormatOggOpus:   {"ogg-opus", "audio/ogg", ".ogg"},
	FormatMP3:       {"mp3", "audio/mpeg", ".mp3"},
	FormatWAV:       {"wav", "audio/wav", ".wav"},
	FormatMulaw8k:   {"mulaw-8k", "audio/wav", ".wav"},
	FormatOggVorbis: {"ogg-vorbis", "audio/ogg", ".ogg"},
}

func (f Format) valid() bool {
	_, ok := formats[f]
	return ok
}

// String returns the format's name as ParseFormat reads it ("ogg-opus",
// "mp3", "wav", "mulaw-8k", "ogg-vorbis").
func (f Format) String() string {
	if i, ok := formats[f]; ok {
		return i.name
	}
	if f == FormatUnspecified {
		return "unspecified"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// MIMEType returns the format's media type ("audio/ogg").
func (f Format) MIMEType() string { return formats[f].mime }

// Ext returns the usual file name extension with its dot (".ogg").
func (f Format) Ext() string { return formats[f].ext }

// ParseFormat reads a format's name (see Format.String; also "opus", "ogg",
// "linear16", "pcm", "mulaw", "ulaw", "phone").
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ogg-opus", "ogg_opus", "opus", "ogg":
		return FormatOggOpus, nil
	case "mp3":
		return FormatMP3, nil
	case "wav", "linear16", "pcm":
		return FormatWAV, nil
	case "mulaw-8k", "mulaw", "ulaw", "mu-law", "phone":
		return FormatMulaw8k, nil
	case "ogg-vorbis", "vorbis":
		return FormatOggVorbis, nil
	}
	return FormatUnspecified, fmt.Errorf("tts: unknown audio format %q (want ogg-opus, mp3, wav or mulaw-8k)", s)
}

// FormatForFile picks the format for an output file name by its extension:
// ".ogg"/".opus" → FormatOggOpus, ".mp3" → FormatMP3, ".wav" → FormatWAV,
// ".ulaw"/".mulaw" → FormatMulaw8k (still a WAV container).
func FormatForFile(name string) (Format, error) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return FormatUnspecified, fmt.Errorf("tts: %q has no extension to choose an audio format by", name)
	}
	switch strings.ToLower(name[i:]) {
	case ".ogg", ".opus", ".oga":
		return FormatOggOpus, nil
	case ".mp3":
		return FormatMP3, nil
	case ".wav":
		return FormatWAV, nil
	case ".ulaw", ".mulaw", ".ul":
		return FormatMulaw8k, nil
	}
	return FormatUnspecified, fmt.Errorf("tts: no audio format for extension %q (want .ogg, .mp3, .wav or .ulaw)", name[i:])
}
