// Package voice is Marvel's voice integration: it speaks every critical
// firing alert with a text-to-speech chain (notifier/tts), writes the clip
// to a file whose path it prints on the console, and uploads the clip into
// the alert's Slack thread when it is given a [ThreadPoster].
//
// # Failures
//
// Speaking is bounded by Options.Timeout, so a stuck engine never holds
// the dispatcher. When no engine can speak, or the upload fails, Notify
// returns an error and the dispatcher retries this integration alone,
// with backoff (the other integrations have delivered already). Clips are
// cached, so a retry after a failed upload does not synthesize again, and
// the clip file's name is fixed per alert, so a retry rewrites the same
// file. When the ThreadPoster is also a [ThreadFinder] and the alert's
// thread does not exist yet (Slack groups alerts before posting), Notify
// returns [NoThreadYet], which asks the dispatcher to come back later.
// Retrying a clip about an alert older than Options.MaxAge is pointless:
// then Notify logs the failure and returns nil.
package voice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/speech"
	"github.com/mciv/mciv/notifier/tts"
)

// Name is the integration's name in logs and metrics.
const Name = "voice"

// ThreadPoster puts things into an alert's Slack thread (the Slack
// integration implements it). It is defined here, where it is used, so
// that the voice integration does not depend on Slack.
type ThreadPoster interface {
	// PostThreadReply posts text as a reply in the thread of the alert
	// with this fingerprint.
	PostThreadReply(ctx context.Context, fingerprint, text string) error
	// UploadToThread uploads a file into that thread.
	UploadToThread(ctx context.Context, fingerprint, filename string, data []byte, title string) error
}

// ThreadFinder is implemented by a ThreadPoster that can tell whether an
// alert's thread exists yet. The Slack message of an alert can come later
// than the clip (Slack waits group_wait to group alerts, and integrations
// run in parallel); with a ThreadFinder the voice integration waits for
// the thread (see NoThreadYet) instead of uploading into nothing.
type ThreadFinder interface {
	HasThread(ctx context.Context, fingerprint string) (bool, error)
}

// NoThreadYet is returned by Notify when the alert's thread does not exist
// yet: the dispatcher retries after RetryAfter (the clip is cached and its
// file kept, so a retry only uploads).
type NoThreadYet struct{ After time.Duration }

// Error says what is awaited.
func (e *NoThreadYet) Error() string { return "voice: the alert's Slack thread does not exist yet" }

// RetryAfter asks the dispatcher to wait before the next attempt.
func (e *NoThreadYet) RetryAfter() time.Duration { return e.After }

// Options configures a Notifier.
type Options struct {
	// Engine speaks (a *tts.Chain in production). Required.
	Engine tts.Engine
	// Dir receives the clip files. Required.
	Dir string
	// Severities are the severity label values spoken; empty means
	// ["critical"].
	Severities []string
	// Format of the clips; zero means Ogg Opus.
	Format tts.Format
	// Voice, Language, Rate go into every tts.Request.
	Voice    string
	Language string
	Rate     float64
	// Timeout bounds one Notify; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxAge: see the package documentation; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// Thread receives the clip; nil uploads nothing.
	Thread ThreadPoster
	// Out gets one line per clip with its path (the console); nil prints
	// nothing.
	Out io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Notifier speaks alerts. It is safe for concurrent use.
type Notifier struct {
	opts Options
	sev  []string
	log  *slog.Logger
}

// New returns a voice Notifier.
func New(opts Options) (*Notifier, error) {
	if opts.Engine == nil {
		return nil, errors.New("voice: no text-to-speech engine")
	}
	if opts.Dir == "" {
		return nil, errors.New("voice: no clip directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("voice: clip directory: %w", err)
	}
	if opts.Format == tts.FormatUnspecified {
		opts.Format = tts.FormatOggOpus
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sev := opts.Severities
	if len(sev) == 0 {
		sev = []string{"critical"}
	}
	for i, s := range sev {
		sev[i] = strings.ToLower(strings.TrimSpace(s))
	}
	return &Notifier{opts: opts, sev: sev, log: log}, nil
}

// Name returns "voice".
func (n *Notifier) Name() string { return Name }

// Speaks reports whether a is spoken: a firing alert whose severity label
// is one of the configured severities.
func (n *Notifier) Speaks(a *wire.Alert) bool {
	return a != nil && a.State == wire.StateFiring &&
		slices.Contains(n.sev, strings.ToLower(a.Labels[speech.LabelSeverity]))
}

// Clip is one spoken alert.
type Clip struct {
	Path  string
	Text  string
	Audio tts.Audio
}

// Notify speaks a when it is a firing alert of a spoken severity; it
// ignores every other alert. See the package documentation for errors.
func (n *Notifier) Notify(ctx context.Context, a *wire.Alert) error {
	if !n.Speaks(a) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	log := n.log.With("rule", a.Rule, "fingerprint", a.Fingerprint)
	_, err := n.Speak(ctx, a)
	if err == nil {
		return nil
	}
	if age := n.opts.Now().Sub(a.At); !a.At.IsZero() && age > n.opts.MaxAge {
		log.Error("giving up speaking an old alert", "age", age.Round(time.Second), "err", err)
		return nil
	}
	return err
}

// Speak synthesizes a's text, writes the clip file, prints its path and
// uploads it to the alert's thread, whatever a's severity.
func (n *Notifier) Speak(ctx context.Context, a *wire.Alert) (Clip, error) {
	log := n.log.With("rule", a.Rule, "fingerprint", a.Fingerprint)
	text, terr := speech.Render(a)
	if terr != nil {
		log.Warn("voice template not used; speaking the default sentence", "err", terr)
	}
	audio, err := n.opts.Engine.Synthesize(ctx, tts.Request{
		Text:     text,
		Voice:    n.opts.Voice,
		Language: n.opts.Language,
		Rate:     n.opts.Rate,
		Format:   n.opts.Format,
	})
	if err != nil {
		return Clip{}, fmt.Errorf("voice: speaking alert %s: %w", a.Rule, err)
	}
	clip := Clip{Path: filepath.Join(n.opts.Dir, ClipName(a, audio.Ext)), Text: text, Audio: audio}
	fresh, err := writeIfChanged(clip.Path, audio.Data)
	if err != nil {
		return clip, fmt.Errorf("voice: writing clip: %w", err)
	}
	if fresh {
		log.Info("alert spoken", "path", clip.Path, "engine", audio.Engine, "bytes", len(audio.Data))
		if n.opts.Out != nil {
			fmt.Fprintf(n.opts.Out, "voice: %s %s spoken by %s: %s\n", strings.ToUpper(a.Labels[speech.LabelSeverity]), a.Rule, audio.Engine, clip.Path)
		}
	}
	if f, ok := n.opts.Thread.(ThreadFinder); ok {
		has, err := f.HasThread(ctx, a.Fingerprint)
		if err != nil {
			return clip, fmt.Errorf("voice: looking for the alert's thread: %w", err)
		}
		if !has {
			return clip, &NoThreadYet{After: 10 * time.Second}
		}
	}
	if n.opts.Thread != nil {
		title := "🔊 " + text
		if err := n.opts.Thread.UploadToThread(ctx, a.Fingerprint, filepath.Base(clip.Path), audio.Data, title); err != nil {
			return clip, fmt.Errorf("voice: uploading clip to the alert's thread: %w", err)
		}
	}
	return clip, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// ClipName is the file name of a's clip: the rule, the fingerprint and the
// start time, so that every firing of an alert has its own clip and a
// retry rewrites the same file.
func ClipName(a *wire.Alert, ext string) string {
	rule := unsafeName.ReplaceAllString(a.Rule, "_")
	fp := unsafeName.ReplaceAllString(a.Fingerprint, "_")
	if len(fp) > 16 {
		fp = fp[:16]
	}
	return fmt.Sprintf("%s-%s-%s%s", rule, fp, a.StartsAt.UTC().Format("20060102T150405Z"), ext)
}

// writeIfChanged writes data to path atomically unless path already holds
// exactly data; it reports whether it wrote.
func writeIfChanged(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".clip-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}
