// Package espeak is the offline text-to-speech engine: it runs the
// espeak-ng program (Debian package espeak-ng) and converts its WAV output
// with sox (package sox; MP3 needs libsox-fmt-mp3) and, for Ogg Opus,
// opusenc (package opus-tools).
//
// Programs are run directly, never through a shell, and the text goes to
// espeak-ng on standard input, so no text can become an option or a
// command.
//
// Formats: WAV (22050 Hz 16-bit mono, as espeak-ng speaks), µ-law 8 kHz
// WAV for phones, MP3, and Ogg Opus when opusenc is installed. Debian's sox
// cannot write Opus; without opusenc a request for Ogg Opus gets Ogg Vorbis
// (tts.FormatOggVorbis: same container and MIME type) and the engine logs
// it once. [Engine.Formats] tells what this host can produce.
package espeak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mciv/mciv/notifier/tts"
)

// Name is the engine's name in chains, logs and metrics.
const Name = "espeak"

// Config configures the engine. The zero value works on a host with the
// packages installed.
type Config struct {
	// Binary is the espeak-ng program; empty looks up "espeak-ng" on PATH.
	Binary string
	// Sox is the sox program; empty looks up "sox" on PATH. Without it
	// only WAV can be produced.
	Sox string
	// Opusenc is the opusenc program; empty looks up "opusenc" on PATH.
	Opusenc string
	// NoOpusenc never uses opusenc: Ogg requests get Ogg Vorbis from sox.
	NoOpusenc bool
	// Voice is the espeak-ng voice ("en-us", "en-gb", "en-us+f3"); empty
	// chooses by language.
	Voice string
	// Language is used when neither the request nor Voice names a voice;
	// empty means "en-US".
	Language string
	// WordsPerMinute is the speed at rate 1; 0 means 175 (espeak-ng's
	// default).
	WordsPerMinute int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Engine speaks with espeak-ng. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	espeak  string
	sox     string // "" when missing
	opusenc string // "" when missing or disabled
	logger  *slog.Logger

	mu         sync.Mutex
	soxFormats map[string]bool // what `sox -h` lists; nil until asked
	warned     bool            // Vorbis-for-Opus logged
}

// ErrNotInstalled is wrapped by New's error when espeak-ng is missing.
var ErrNotInstalled = errors.New("espeak-ng not found: install espeak-ng (apt-get install espeak-ng)")

// New returns an engine, or an error wrapping ErrNotInstalled when the
// espeak-ng program is not there.
func New(cfg Config) (*Engine, error) {
	if cfg.Binary == "" {
		cfg.Binary = "espeak-ng"
	}
	if cfg.Language == "" {
		cfg.Language = "en-US"
	}
	if cfg.WordsPerMinute <= 0 {
		cfg.WordsPerMinute = 175
	}
	e := &Engine{cfg: cfg, logger: cfg.Logger}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	p, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("espeak: %q: %w", cfg.Binary, ErrNotInstalled)
	}
	e.espeak = p
	e.sox = lookOptional(cfg.Sox, "sox")
	if !cfg.NoOpusenc {
		e.opusenc = lookOptional(cfg.Opusenc, "opusenc")
	}
	return e, nil
}

// lookOptional returns the path of an optional program, or "".
func lookOptional(configured, def string) string {
	if configured == "" {
		configured = def
	}
	p, err := exec.LookPath(configured)
	if err != nil {
		return ""
	}
	return p
}

// Name returns "espeak".
func (e *Engine) Name() string { return Name }

// Formats returns the formats this host can produce, given the programs
// installed (and what sox was built with).
func (e *Engine) Formats(ctx context.Context) []tts.Format {
	out := []tts.Format{tts.FormatWAV}
	if e.sox == "" {
		return out
	}
	sf, err := e.soxCanWrite(ctx)
	if err != nil {
		return out
	}
	if sf["wav"] {
		out = append(out, tts.FormatMulaw8k)
	}
	if sf["mp3"] {
		out = append(out, tts.FormatMP3)
	}
	if e.opusenc != "" {
		out = append(out, tts.FormatOggOpus)
	}
	if sf["ogg"] || sf["vorbis"] {
		out = append(out, tts.FormatOggVorbis)
	}
	return out
}

// Synthesize speaks req.Text with espeak-ng and converts the result to
// req.Format.
func (e *Engine) Synthesize(ctx context.Context, req tts.Request) (tts.Audio, error) {
	req, err := req.Normalize()
	if err != nil {
		return tts.Audio{}, err
	}
	wav, err := e.speak(ctx, req)
	if err != nil {
		return tts.Audio{}, err
	}
	return e.convert(ctx, wav, req.Format)
}

// speak runs espeak-ng and returns a WAV file with correct sizes. A voice
// espeak-ng does not have is replaced by the next candidate (configured
// voice, then the language's voice, then "en").
func (e *Engine) speak(ctx context.Context, req tts.Request) ([]byte, error) {
	wpm := int(math.Round(float64(e.cfg.WordsPerMinute) * req.Rate))
	wpm = min(max(wpm, 80), 450)
	voices := e.voices(req)
	var lastErr error
	for i, voice := range voices {
		args := []string{"-v", voice, "-s", strconv.Itoa(wpm), "--stdout", "--stdin"}
		if req.SSML {
			args = append(args, "-m")
		}
		out, stderr, err := run(ctx, e.espeak, args, strings.NewReader(req.Text))
		if err == nil {
			info, samples, perr := tts.ParseWAV(out)
			if perr != nil {
				return nil, fmt.Errorf("espeak: espeak-ng output: %w", perr)
			}
			if len(samples) == 0 {
				return nil, errors.New("espeak: espeak-ng produced no audio")
			}
			if i > 0 {
				e.logger.Debug("espeak: voice not available, used another", "wanted", voices[0], "used", voice)
			}
			return tts.EncodeWAV(info, samples), nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("espeak: %w", ctx.Err())
		}
		lastErr = fmt.Errorf("espeak: espeak-ng -v %s: %w%s", voice, err, stderrText(stderr))
		if !strings.Contains(stderr, "voice does not exist") {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// voices lists the voices to try for req, in order, without repeats.
func (e *Engine) voices(req tts.Request) []string {
	var out []string
	seen := map[string]bool{}
	add := func(v string) {
		v = strings.TrimSpace(v)
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	add(req.Voice)
	add(e.cfg.Voice)
	add(strings.ToLower(req.Language))
	add(strings.ToLower(e.cfg.Language))
	add("en")
	return out
}

// convert turns espeak-ng's WAV into format f.
func (e *Engine) convert(ctx context.Context, wav []byte, f tts.Format) (tts.Audio, error) {
	if f == tts.FormatWAV {
		return tts.NewAudio(wav, f, Name), nil
	}
	if e.sox == "" && !(f == tts.FormatOggOpus && e.opusenc != "") {
		return tts.Audio{}, fmt.Errorf("espeak: %s needs sox: install sox", f)
	}
	dir, err := os.MkdirTemp("", "mciv-espeak-*")
	if err != nil {
		return tts.Audio{}, fmt.Errorf("espeak: %w", err)
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in.wav")
	if err := os.WriteFile(in, wav, 0o600); err != nil {
		return tts.Audio{}, fmt.Errorf("espeak: %w", err)
	}

	var prog string
	var args []string
	var outName string
	got := f
	switch f {
	case tts.FormatMulaw8k:
		outName = "out.wav"
		prog, args = e.sox, []string{in, "-r", "8000", "-c", "1", "-e", "u-law", filepath.Join(dir, outName)}
	case tts.FormatMP3:
		if err := e.needSox(ctx, "mp3", "libsox-fmt-mp3"); err != nil {
			return tts.Audio{}, err
		}
		outName = "out.mp3"
		prog, args = e.sox, []string{in, filepath.Join(dir, outName)}
	case tts.FormatOggOpus, tts.FormatOggVorbis:
		outName = "out.ogg"
		if f == tts.FormatOggOpus && e.opusenc != "" {
			prog, args = e.opusenc, []string{"--quiet", in, filepath.Join(dir, outName)}
			break
		}
		if err := e.needSox(ctx, "ogg", "libsox-fmt-base"); err != nil {
			return tts.Audio{}, err
		}
		if f == tts.FormatOggOpus {
			e.warnVorbis()
		}
		got = tts.FormatOggVorbis
		prog, args = e.sox, []string{in, "-t", "ogg", filepath.Join(dir, outName)}
	default:
		return tts.Audio{}, fmt.Errorf("espeak: cannot produce %s", f)
	}
	if _, stderr, err := run(ctx, prog, args, nil); err != nil {
		if ctx.Err() != nil {
			return tts.Audio{}, fmt.Errorf("espeak: %w", ctx.Err())
		}
		return tts.Audio{}, fmt.Errorf("espeak: converting to %s with %s: %w%s", f, filepath.Base(prog), err, stderrText(stderr))
	}
	data, err := os.ReadFile(filepath.Join(dir, outName))
	if err != nil {
		return tts.Audio{}, fmt.Errorf("espeak: converting to %s: %w", f, err)
	}
	return tts.NewAudio(data, got, Name), nil
}

// warnVorbis logs once that Ogg Opus requests get Ogg Vorbis.
func (e *Engine) warnVorbis() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.warned {
		e.warned = true
		e.logger.Info("espeak: no opusenc (install opus-tools, or it is disabled): Ogg Opus requests get Ogg Vorbis")
	}
}

// needSox fails unless sox can write the format (as `sox -h` lists it).
func (e *Engine) needSox(ctx context.Context, format, pkg string) error {
	sf, err := e.soxCanWrite(ctx)
	if err != nil {
		return err
	}
	if !sf[format] {
		return fmt.Errorf("espeak: this sox cannot write %s: install %s", format, pkg)
	}
	return nil
}

// soxCanWrite returns the file formats `sox -h` lists, asking once.
func (e *Engine) soxCanWrite(ctx context.Context) (map[string]bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.soxFormats != nil {
		return e.soxFormats, nil
	}
	out, stderr, err := run(ctx, e.sox, []string{"-h"}, nil)
	if err != nil {
		return nil, fmt.Errorf("espeak: sox -h: %w%s", err, stderrText(stderr))
	}
	e.soxFormats = parseSoxFormats(string(out))
	return e.soxFormats, nil
}

// parseSoxFormats reads the "AUDIO FILE FORMATS:" line of `sox -h`.
func parseSoxFormats(help string) map[string]bool {
	m := map[string]bool{}
	for line := range strings.Lines(help) {
		if rest, ok := strings.CutPrefix(line, "AUDIO FILE FORMATS:"); ok {
			for _, f := range strings.Fields(rest) {
				m[f] = true
			}
		}
	}
	return m
}

// run runs prog with args (no shell), feeding stdin, and returns its
// standard output and (the start of) its standard error.
func run(ctx context.Context, prog string, args []string, stdin *strings.Reader) ([]byte, string, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout bytes.Buffer
	stderr := &limitedBuffer{max: 4096}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	return stdout.Bytes(), stderr.String(), err
}

// stderrText formats a program's error output for an error message.
func stderrText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return ""
	}
	return ": " + s
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

// Write keeps what fits and reports all of p written.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// String returns what was kept.
func (b *limitedBuffer) String() string { return b.buf.String() }
