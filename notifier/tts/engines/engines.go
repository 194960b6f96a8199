// Package engines builds text-to-speech engines and chains by name, for
// the notifier's configuration and the `mciv say` command:
//
//	chain, err := engines.NewChain(ctx, []string{"google", "espeak"}, engines.Config{...})
//	defer chain.Close()
//	clip, err := chain.Synthesize(ctx, tts.Request{Text: speech.Text(alert), Format: tts.FormatOggOpus})
package engines

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/option"

	"github.com/mciv/mciv/notifier/tts"
	"github.com/mciv/mciv/notifier/tts/espeak"
	"github.com/mciv/mciv/notifier/tts/google"
)

// Known engine names, in the order a default chain uses them.
var known = []string{google.Name, espeak.Name}

// Names returns the known engine names ("google", "espeak").
func Names() []string { return slices.Clone(known) }

// Config configures every engine a chain may hold, and the chain.
type Config struct {
	Google google.Config
	// GoogleOptions are extra client options for the Google engine (tests
	// pass googletest's to reach a fake server).
	GoogleOptions []option.ClientOption
	Espeak        espeak.Config

	// Timeout bounds each engine's attempt in a chain (0: tts.DefaultTimeout);
	// Timeouts overrides it by engine name.
	Timeout  time.Duration
	Timeouts map[string]time.Duration

	// CacheBytes bounds the in-memory clip cache (0: 32 MiB); CacheDir
	// also keeps clips on disk; NoCache turns caching off.
	CacheBytes int64
	CacheDir   string
	NoCache    bool

	// Registerer receives the chain's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default(). Given to engines that have none.
	Logger *slog.Logger
}

// ParseNames reads a comma-separated engine list ("google,espeak"),
// rejecting unknown and repeated names.
func ParseNames(s string) ([]string, error) {
	var names []string
	for n := range strings.SplitSeq(s, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("tts: unknown engine %q (known: %s)", n, strings.Join(known, ", "))
		}
		if slices.Contains(names, n) {
			return nil, fmt.Errorf("tts: engine %q named twice", n)
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("tts: no engine named (known: %s)", strings.Join(known, ", "))
	}
	return names, nil
}

// New builds one engine by name. The Google engine holds a connection:
// close it (it implements io.Closer) when done.
func New(ctx context.Context, name string, cfg Config) (tts.Engine, error) {
	switch name {
	case google.Name:
		gc := cfg.Google
		if gc.Logger == nil {
			gc.Logger = cfg.Logger
		}
		return google.New(ctx, gc, cfg.GoogleOptions...)
	case espeak.Name:
		ec := cfg.Espeak
		if ec.Logger == nil {
			ec.Logger = cfg.Logger
		}
		return espeak.New(ec)
	}
	return nil, fmt.Errorf("tts: unknown engine %q (known: %s)", name, strings.Join(known, ", "))
}

// NewChain builds the named engines and a chain that asks them in that
// order, with a clip cache unless cfg.NoCache. Close the chain when done.
func NewChain(ctx context.Context, names []string, cfg Config) (*tts.Chain, error) {
	if len(names) == 0 {
		return nil, errors.New("tts: no engine named")
	}
	var built []tts.Engine
	closeAll := func() {
		for _, e := range built {
			if c, ok := e.(io.Closer); ok {
				c.Close()
			}
		}
	}
	for _, n := range names {
		e, err := New(ctx, n, cfg)
		if err != nil {
			closeAll()
			return nil, err
		}
		built = append(built, e)
	}
	var cache *tts.Cache
	if !cfg.NoCache {
		var err error
		cache, err = tts.NewCache(tts.CacheConfig{MaxBytes: cfg.CacheBytes, Dir: cfg.CacheDir, Logger: cfg.Logger})
		if err != nil {
			closeAll()
			return nil, err
		}
	}
	chain, err := tts.NewChain(built, tts.ChainConfig{
		Timeout:    cfg.Timeout,
		Timeouts:   cfg.Timeouts,
		Cache:      cache,
		Registerer: cfg.Registerer,
		Logger:     cfg.Logger,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	return chain, nil
}
