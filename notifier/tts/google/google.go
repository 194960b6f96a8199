// Package google is the Google Cloud Text-to-Speech engine, on the official
// client library (cloud.google.com/go/texttospeech/apiv1, gRPC).
//
// Formats map to the API's encodings: FormatOggOpus → OGG_OPUS, FormatMP3
// → MP3, FormatWAV → LINEAR16, FormatMulaw8k → MULAW at 8000 Hz with the
// "telephony-class-application" effects profile. Google returns LINEAR16
// and MULAW inside a WAV header; the engine checks that header and returns
// the file as it is (tts.FormatWAV and tts.FormatMulaw8k are WAV
// containers), so tts.ParseWAV gives the raw samples.
//
// The client library retries Unavailable for up to five minutes by
// default; this engine turns its retries off and bounds every call by
// Config.Timeout, because a Chain falls back to the next engine instead.
package google

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	texttospeech "cloud.google.com/go/texttospeech/apiv1"
	"cloud.google.com/go/texttospeech/apiv1/texttospeechpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"

	"github.com/mciv/mciv/notifier/tts"
)

// Name is the engine's name in chains, logs and metrics.
const Name = "google"

// MaxInputBytes is the API's limit on the text or SSML of one request.
const MaxInputBytes = 5000

// PhoneEffectsProfile is the audio profile asked for phone audio.
const PhoneEffectsProfile = "telephony-class-application"

// DefaultTimeout bounds one call when Config.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// Config configures the engine.
type Config struct {
	// Voice is the voice name ("en-US-Neural2-F"); empty lets Google pick
	// one for the language.
	Voice string
	// Language is the BCP 47 language code used when neither the request
	// nor the voice name gives one; empty means "en-US".
	Language string
	// CredentialsFile is a service account key file; empty uses
	// Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, the
	// metadata server). Other credential types can be given as options to
	// New.
	CredentialsFile string
	// Endpoint overrides the API endpoint ("host:port").
	Endpoint string
	// Timeout bounds each call, retries included (there are none);
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger; nil means slog.Default(). (The client library logs on its
	// own only when GOOGLE_SDK_GO_LOGGING_LEVEL is set.)
	Logger *slog.Logger
}

// Engine speaks with Google Cloud Text-to-Speech. It is safe for
// concurrent use; Close releases its connection.
type Engine struct {
	cfg    Config
	client *texttospeech.Client
	logger *slog.Logger
}

// New connects a client. opts come after the ones Config implies, so tests
// can point the engine at a fake server (option.WithEndpoint,
// option.WithoutAuthentication, option.WithGRPCDialOption with insecure
// transport credentials; see notifier/tts/google/googletest).
func New(ctx context.Context, cfg Config, opts ...option.ClientOption) (*Engine, error) {
	if cfg.Language == "" {
		cfg.Language = "en-US"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var all []option.ClientOption
	if cfg.CredentialsFile != "" {
		all = append(all, option.WithAuthCredentialsFile(option.ServiceAccount, cfg.CredentialsFile))
	}
	if cfg.Endpoint != "" {
		all = append(all, option.WithEndpoint(cfg.Endpoint))
	}
	all = append(all, opts...)
	client, err := texttospeech.NewClient(ctx, all...)
	if err != nil {
		return nil, fmt.Errorf("google: text-to-speech client: %w", err)
	}
	// No retries: a failed call fails fast and the chain moves on.
	client.CallOptions.SynthesizeSpeech = []gax.CallOption{gax.WithTimeout(cfg.Timeout), gax.WithRetry(nil)}
	return &Engine{cfg: cfg, client: client, logger: logger}, nil
}

// Name returns "google".
func (e *Engine) Name() string { return Name }

// Close closes the client's connection.
func (e *Engine) Close() error {
	if err := e.client.Close(); err != nil {
		return fmt.Errorf("google: close: %w", err)
	}
	return nil
}

// Synthesize asks the API for req within Config.Timeout.
func (e *Engine) Synthesize(ctx context.Context, req tts.Request) (tts.Audio, error) {
	req, err := req.Normalize()
	if err != nil {
		return tts.Audio{}, err
	}
	pb, err := e.request(req)
	if err != nil {
		return tts.Audio{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	resp, err := e.client.SynthesizeSpeech(ctx, pb)
	if err != nil {
		return tts.Audio{}, fmt.Errorf("google: synthesize: %w", err)
	}
	return audio(resp.GetAudioContent(), req.Format)
}

// request builds the API request for req.
func (e *Engine) request(req tts.Request) (*texttospeechpb.SynthesizeSpeechRequest, error) {
	if n := len(req.Text); n > MaxInputBytes {
		return nil, fmt.Errorf("google: input is %d bytes, the API takes at most %d", n, MaxInputBytes)
	}
	input := &texttospeechpb.SynthesisInput{InputSource: &texttospeechpb.SynthesisInput_Text{Text: req.Text}}
	if req.SSML {
		input.InputSource = &texttospeechpb.SynthesisInput_Ssml{Ssml: req.Text}
	}
	voice, lang := e.voice(req)
	ac := &texttospeechpb.AudioConfig{SpeakingRate: min(max(req.Rate, 0.25), 2.0)}
	switch req.Format {
	case tts.FormatOggOpus, tts.FormatOggVorbis:
		ac.AudioEncoding = texttospeechpb.AudioEncoding_OGG_OPUS
	case tts.FormatMP3:
		ac.AudioEncoding = texttospeechpb.AudioEncoding_MP3
	case tts.FormatWAV:
		ac.AudioEncoding = texttospeechpb.AudioEncoding_LINEAR16
	case tts.FormatMulaw8k:
		ac.AudioEncoding = texttospeechpb.AudioEncoding_MULAW
		ac.SampleRateHertz = 8000
		ac.EffectsProfileId = []string{PhoneEffectsProfile}
	default:
		return nil, fmt.Errorf("google: cannot produce %s", req.Format)
	}
	return &texttospeechpb.SynthesizeSpeechRequest{
		Input:       input,
		Voice:       &texttospeechpb.VoiceSelectionParams{LanguageCode: lang, Name: voice},
		AudioConfig: ac,
	}, nil
}

// voice picks the voice name and language code for req: the request's
// voice if it is a Google voice name, else the configured voice unless the
// request asks for another language (then Google picks a voice for it).
// A voice name fixes the language.
func (e *Engine) voice(req tts.Request) (voice, lang string) {
	switch {
	case IsVoiceName(req.Voice):
		voice = req.Voice
	case req.Language == "" || voiceLanguage(e.cfg.Voice) == "" || strings.EqualFold(voiceLanguage(e.cfg.Voice), req.Language):
		voice = e.cfg.Voice
	}
	if req.Voice != "" && voice != req.Voice {
		e.logger.Debug("google: not a Google voice name, using the configured voice", "voice", req.Voice, "using", voice)
	}
	lang = voiceLanguage(voice)
	if lang == "" {
		lang = req.Language
	}
	if lang == "" {
		lang = e.cfg.Language
	}
	return voice, lang
}

// audio checks the API's answer and wraps it as a clip of format f.
func audio(data []byte, f tts.Format) (tts.Audio, error) {
	if len(data) == 0 {
		return tts.Audio{}, errors.New("google: empty audio content")
	}
	switch f {
	case tts.FormatWAV, tts.FormatMulaw8k:
		if err := tts.CheckWAV(data, f); err != nil {
			return tts.Audio{}, fmt.Errorf("google: %s audio: %w", f, err)
		}
	case tts.FormatOggVorbis:
		f = tts.FormatOggOpus // what was asked for the API
	}
	return tts.NewAudio(data, f, Name), nil
}

// voiceNameRE matches Google voice names: language, region, then the
// voice ("en-US-Neural2-F", "cmn-CN-Wavenet-A", "en-US-Chirp3-HD-Kore").
var voiceNameRE = regexp.MustCompile(`^[a-z]{2,3}-[A-Z]{2}-[A-Za-z0-9]+(-[A-Za-z0-9]+)*$`)

// IsVoiceName reports whether name has the shape of a Google voice name;
// other names (espeak-ng's "en-us+f3") are for other engines, and this one
// uses its configured voice instead.
func IsVoiceName(name string) bool { return voiceNameRE.MatchString(name) }

// voiceLanguage returns the language code a voice name starts with
// ("en-US-Neural2-F" → "en-US"), or "".
func voiceLanguage(voice string) string {
	if !IsVoiceName(voice) {
		return ""
	}
	parts := strings.SplitN(voice, "-", 3)
	return parts[0] + "-" + parts[1]
}
