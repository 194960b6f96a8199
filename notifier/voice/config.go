package voice

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/notifier/tts"
	"github.com/mciv/mciv/notifier/tts/engines"
	"github.com/mciv/mciv/notifier/tts/espeak"
	"github.com/mciv/mciv/notifier/tts/google"
)

// Config is the `voice:` section of mciv's configuration:
//
//	voice:
//	  engines: google,espeak     # default: google,espeak with Google credentials, else espeak
//	  severities: [critical]     # which alerts are spoken
//	  format: ogg-opus           # clip format: ogg-opus, mp3, wav
//	  voice: en-US-Neural2-F     # engine-specific voice; empty: each engine's default
//	  language: en-US
//	  rate: 1.0
//	  timeout: 30s               # bounds one alert's synthesis, upload included
//	  dir: ./data/voice/clips    # where clips are written; default <data_dir>/voice/clips
//	  google:
//	    credentials_file: /etc/mciv/google.json
//	    voice: en-US-Neural2-F
type Config struct {
	// Enabled turns the voice integration off when false; absent means on
	// (it only needs espeak-ng).
	Enabled *bool `yaml:"enabled"`
	// Engines is the comma-separated engine order ("google,espeak").
	Engines string `yaml:"engines"`
	// Severities are the values of the severity label that are spoken;
	// default [critical].
	Severities []string `yaml:"severities"`
	// Format of the clips written and uploaded; default ogg-opus.
	Format string `yaml:"format"`
	// Voice, Language and Rate are passed to the engines (see tts.Request).
	Voice    string  `yaml:"voice"`
	Language string  `yaml:"language"`
	Rate     float64 `yaml:"rate"`
	// Timeout bounds speaking one alert (synthesis, file, upload); default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAge: an alert older than this that still cannot be spoken is
	// given up on (logged) instead of retried; default 15m.
	MaxAge time.Duration `yaml:"max_age"`
	// Dir receives the clips; default <data_dir>/voice/clips.
	Dir string `yaml:"dir"`
	// Google configures the Google Cloud Text-to-Speech engine.
	Google GoogleConfig `yaml:"google"`
	// Espeak configures espeak-ng.
	Espeak EspeakConfig `yaml:"espeak"`
}

// GoogleConfig configures the Google engine.
type GoogleConfig struct {
	// CredentialsFile is a service account key; when neither it nor
	// GOOGLE_APPLICATION_CREDENTIALS is set, the default chain is espeak only.
	CredentialsFile string        `yaml:"credentials_file"`
	Voice           string        `yaml:"voice"`
	Language        string        `yaml:"language"`
	Endpoint        string        `yaml:"endpoint"`
	Timeout         time.Duration `yaml:"timeout"`
}

// EspeakConfig configures espeak-ng.
type EspeakConfig struct {
	Voice          string `yaml:"voice"`
	WordsPerMinute int    `yaml:"words_per_minute"`
}

// Defaults.
const (
	DefaultTimeout = 30 * time.Second
	DefaultMaxAge  = 15 * time.Minute
)

// On reports whether the integration is enabled.
func (c Config) On() bool { return c.Enabled == nil || *c.Enabled }

// EngineNames returns the configured engine order, or the default:
// "google,espeak" when Google credentials are configured (in the file or
// by GOOGLE_APPLICATION_CREDENTIALS, read with getenv), else "espeak".
func (c Config) EngineNames(getenv func(string) string) ([]string, error) {
	if strings.TrimSpace(c.Engines) != "" {
		return engines.ParseNames(c.Engines)
	}
	if c.Google.CredentialsFile != "" || (getenv != nil && getenv("GOOGLE_APPLICATION_CREDENTIALS") != "") {
		return []string{google.Name, espeak.Name}, nil
	}
	return []string{espeak.Name}, nil
}

// ClipFormat returns the configured clip format (default Ogg Opus).
func (c Config) ClipFormat() (tts.Format, error) {
	if c.Format == "" {
		return tts.FormatOggOpus, nil
	}
	return tts.ParseFormat(c.Format)
}

// SeverityList returns the spoken severities, default [critical].
func (c Config) SeverityList() []string {
	if len(c.Severities) == 0 {
		return []string{"critical"}
	}
	return slices.Clone(c.Severities)
}

// ClipDir returns Dir or <dataDir>/voice/clips.
func (c Config) ClipDir(dataDir string) string {
	if c.Dir != "" {
		return c.Dir
	}
	return filepath.Join(dataDir, "voice", "clips")
}

// CacheDir is where synthesized clips are cached: <dataDir>/voice/cache.
func CacheDir(dataDir string) string { return filepath.Join(dataDir, "voice", "cache") }

// Validate checks the section.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Engines) != "" {
		if _, err := engines.ParseNames(c.Engines); err != nil {
			errs = append(errs, fmt.Errorf("voice.engines: %w", err))
		}
	}
	if _, err := c.ClipFormat(); err != nil {
		errs = append(errs, fmt.Errorf("voice.format: %w", err))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("voice.rate must not be negative"))
	}
	if c.Timeout < 0 || c.MaxAge < 0 {
		errs = append(errs, errors.New("voice.timeout and voice.max_age must not be negative"))
	}
	return errors.Join(errs...)
}

// EnginesConfig returns the engines configuration for a chain caching
// under <dataDir>/voice/cache.
func (c Config) EnginesConfig(dataDir string) engines.Config {
	return engines.Config{
		Google: google.Config{
			Voice:           c.Google.Voice,
			Language:        c.Google.Language,
			CredentialsFile: c.Google.CredentialsFile,
			Endpoint:        c.Google.Endpoint,
			Timeout:         c.Google.Timeout,
		},
		Espeak: espeak.Config{
			Voice:          c.Espeak.Voice,
			WordsPerMinute: c.Espeak.WordsPerMinute,
		},
		CacheDir: CacheDir(dataDir),
	}
}
