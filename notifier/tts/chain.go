package tts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTimeout is how long a Chain gives one engine for one clip unless
// configured otherwise.
const DefaultTimeout = 20 * time.Second

// ChainConfig configures a Chain.
type ChainConfig struct {
	// Timeout bounds each engine's attempt; 0 means DefaultTimeout.
	Timeout time.Duration
	// Timeouts overrides Timeout for engines by name (a cloud engine gets
	// a few seconds, a local one more).
	Timeouts map[string]time.Duration
	// Cache keeps clips; nil synthesizes every request.
	Cache *Cache
	// Registerer receives the chain's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Chain is an Engine that asks its engines in order: when one fails or
// does not answer within its timeout, the next one speaks. Clips spoken by
// the first engine are cached durably; clips spoken by a fallback engine
// only for a while (CacheConfig.TransientTTL), so the preferred voice
// returns when its engine does.
type Chain struct {
	engines  []Engine
	names    []string
	timeouts []time.Duration
	cache    *Cache
	metrics  *metrics
	logger   *slog.Logger
}

// NewChain returns a chain of engines, asked in the order given.
func NewChain(engines []Engine, cfg ChainConfig) (*Chain, error) {
	if len(engines) == 0 {
		return nil, errors.New("tts: a chain needs at least one engine")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c := &Chain{engines: engines, cache: cfg.Cache, logger: logger}
	seen := map[string]bool{}
	for _, e := range engines {
		n := e.Name()
		if seen[n] {
			return nil, fmt.Errorf("tts: engine %q appears twice in the chain", n)
		}
		seen[n] = true
		t := cfg.Timeout
		if d, ok := cfg.Timeouts[n]; ok {
			t = d
		}
		if t <= 0 {
			t = DefaultTimeout
		}
		c.names = append(c.names, n)
		c.timeouts = append(c.timeouts, t)
	}
	for n := range cfg.Timeouts {
		if !seen[n] {
			return nil, fmt.Errorf("tts: timeout for engine %q, which is not in the chain %s", n, strings.Join(c.names, ","))
		}
	}
	c.metrics = newMetrics(cfg.Registerer, c.names, logger)
	return c, nil
}

// Name returns the engine names in order, joined by commas ("google,espeak").
func (c *Chain) Name() string { return strings.Join(c.names, ",") }

// Engines returns the engine names in the order they are asked.
func (c *Chain) Engines() []string { return append([]string(nil), c.names...) }

// Synthesize returns the clip for req from the cache or from the first
// engine that speaks it. When every engine fails the error is a
// *ChainError that lists each engine's failure.
func (c *Chain) Synthesize(ctx context.Context, req Request) (Audio, error) {
	req, err := req.Normalize()
	if err != nil {
		return Audio{}, err
	}
	var key string
	if c.cache != nil {
		key = CacheKey(req, c.names)
		if a, ok := c.cache.Get(key); ok {
			c.metrics.requests.WithLabelValues(requestCached).Inc()
			return a, nil
		}
	}
	var failures []*EngineError
	for i := range c.engines {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		a, err := c.attempt(ctx, i, req)
		if err != nil {
			ee := &EngineError{Engine: c.names[i], Err: err}
			var te *timeoutError
			if errors.As(err, &te) {
				ee.Timeout = true
				c.metrics.syntheses.WithLabelValues(c.names[i], resultTimeout).Inc()
			} else {
				c.metrics.syntheses.WithLabelValues(c.names[i], resultFailure).Inc()
			}
			failures = append(failures, ee)
			if ctx.Err() == nil {
				c.logger.Warn("tts engine failed", "engine", c.names[i], "err", err, "next", c.next(i))
			}
			continue
		}
		c.metrics.syntheses.WithLabelValues(c.names[i], resultSuccess).Inc()
		c.metrics.duration.WithLabelValues(c.names[i]).Observe(time.Since(start).Seconds())
		c.metrics.requests.WithLabelValues(requestSynthesized).Inc()
		if i > 0 {
			c.logger.Info("tts clip spoken by a fallback engine", "engine", c.names[i])
		}
		if c.cache != nil {
			c.cache.Put(key, a, i == 0)
		}
		return a, nil
	}
	c.metrics.requests.WithLabelValues(requestFailed).Inc()
	cerr := &ChainError{Failures: failures}
	if err := ctx.Err(); err != nil {
		return Audio{}, fmt.Errorf("tts: gave up: %w (tried: %s)", err, cerr.detail())
	}
	return Audio{}, cerr
}

// next names the engine after i, for the log, or "none".
func (c *Chain) next(i int) string {
	if i+1 < len(c.names) {
		return c.names[i+1]
	}
	return "none"
}

// attempt runs engine i within its timeout. An engine that does not
// return when its context ends is abandoned (its goroutine finishes on its
// own), so one stuck engine cannot hold the chain.
func (c *Chain) attempt(ctx context.Context, i int, req Request) (Audio, error) {
	e, timeout := c.engines[i], c.timeouts[i]
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		a   Audio
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := e.Synthesize(actx, req)
		done <- result{a, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-actx.Done():
		r.err = actx.Err()
	}
	if r.err != nil {
		if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			return Audio{}, &timeoutError{after: timeout, err: r.err}
		}
		return Audio{}, r.err
	}
	if len(r.a.Data) == 0 {
		return Audio{}, errors.New("returned no audio")
	}
	if !r.a.Format.valid() {
		return Audio{}, fmt.Errorf("returned audio of unknown format %d", int(r.a.Format))
	}
	if r.a.MIMEType == "" {
		r.a.MIMEType = r.a.Format.MIMEType()
	}
	if r.a.Ext == "" {
		r.a.Ext = r.a.Format.Ext()
	}
	if r.a.Engine == "" {
		r.a.Engine = c.names[i]
	}
	return r.a, nil
}

// Close closes the engines that hold resources (those that implement
// io.Closer, such as the Google client).
func (c *Chain) Close() error {
	var errs []error
	for i, e := range c.engines {
		if cl, ok := e.(io.Closer); ok {
			if err := cl.Close(); err != nil {
				errs = append(errs, fmt.Errorf("tts: closing %s: %w", c.names[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// timeoutError is an engine attempt that ran out of its time.
type timeoutError struct {
	after time.Duration
	err   error
}

// Error says how long the engine had.
func (e *timeoutError) Error() string {
	return fmt.Sprintf("timed out after %s: %v", e.after, e.err)
}

// Unwrap returns the engine's own error.
func (e *timeoutError) Unwrap() error { return e.err }

// EngineError is one engine's failure in a Chain.
type EngineError struct {
	Engine  string
	Timeout bool // the engine did not answer within its timeout
	Err     error
}

// Error returns "engine: what went wrong".
func (e *EngineError) Error() string { return e.Engine + ": " + e.Err.Error() }

// Unwrap returns the engine's error.
func (e *EngineError) Unwrap() error { return e.Err }

// ChainError is returned when no engine of a Chain could speak; it lists
// every engine's failure in order.
type ChainError struct {
	Failures []*EngineError
}

// Error lists every engine's failure.
func (e *ChainError) Error() string {
	return "tts: no engine could speak: " + e.detail()
}

// detail lists the failures: "google: ...; espeak: ...".
func (e *ChainError) detail() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = f.Error()
	}
	if len(parts) == 0 {
		return "no engine was tried"
	}
	return strings.Join(parts, "; ")
}

// Unwrap returns the engines' errors, so that errors.Is sees each.
func (e *ChainError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}
