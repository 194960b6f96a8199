package slack

import (
	"context"
	"errors"
	"fmt"
	"github.com/mciv/mciv/internal/promreg"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// DefaultChannelRate is how many messages per second Slack accepts in one
// channel (https://docs.slack.dev/apis/web-api/rate-limits: "1 per second
// per channel", short bursts tolerated).
const DefaultChannelRate = 1.0

// limiters holds one token bucket per channel, so that one busy channel
// does not slow the others.
type limiters struct {
	mu    sync.Mutex
	rate  rate.Limit
	burst int
	by    map[string]*rate.Limiter
}

func newLimiters(perSecond float64, burst int) *limiters {
	if perSecond <= 0 {
		perSecond = DefaultChannelRate
	}
	if burst <= 0 {
		burst = 1
	}
	return &limiters{rate: rate.Limit(perSecond), burst: burst, by: make(map[string]*rate.Limiter)}
}

// wait blocks until a call to channel may be made, or ctx ends.
func (l *limiters) wait(ctx context.Context, channel string) error {
	l.mu.Lock()
	lim, ok := l.by[channel]
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.by[channel] = lim
	}
	l.mu.Unlock()
	if err := lim.Wait(ctx); err != nil {
		return fmt.Errorf("slack: rate limiter for %s: %w", channel, err)
	}
	return nil
}

// caller makes Slack API calls with the channel rate limit and retries:
// Retry-After on 429, exponential backoff on 5xx and network errors.
type caller struct {
	limits      *limiters
	maxAttempts int
	backoff     time.Duration
	wait        func(ctx context.Context, d time.Duration) error
	logger      *slog.Logger
	calls       *prometheus.CounterVec // by method, result; may be nil
}

// Values of the result label of mciv_notifier_slack_calls_total.
const (
	callOK          = "ok"
	callRateLimited = "rate_limited"
	callRetryable   = "retryable_error"
	callFailed      = "error"
)

// newCallMetrics returns the counter of Slack API calls, registered with
// reg (the one already registered if a replica in this process did).
func newCallMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mciv_notifier_slack_calls_total",
		Help: "Slack Web API calls by the notifier, by method and result (ok, rate_limited, retryable_error, error).",
	}, []string{"method", "result"})
	return promreg.Register(reg, c, nil)
}

func (c *caller) count(what, result string) {
	if c.calls != nil {
		c.calls.WithLabelValues(what, result).Inc()
	}
}

// do calls fn until it succeeds, fails for good, or runs out of attempts
// or of ctx. channel selects the rate limiter ("" for none). Calls that
// were rate limited or failed with a server error did not take effect, so
// retrying them does not duplicate.
func (c *caller) do(ctx context.Context, what, channel string, fn func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if channel != "" {
			if err := c.limits.wait(ctx, channel); err != nil {
				return err
			}
		}
		err := fn(ctx)
		if err == nil {
			c.count(what, callOK)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("slack: %s: %w", what, errors.Join(ctx.Err(), err))
		}
		wait, retryAfter, retryable := retryDelay(err, attempt, c.backoff)
		switch {
		case !retryable:
			c.count(what, callFailed)
			return fmt.Errorf("slack: %s: %w", what, err)
		case retryAfter > 0:
			c.count(what, callRateLimited)
		default:
			c.count(what, callRetryable)
		}
		if attempt >= c.maxAttempts {
			return &retryError{err: fmt.Errorf("slack: %s failed %d times: %w", what, attempt, err), after: retryAfter}
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return &retryError{err: fmt.Errorf("slack: %s: %w", what, err), after: retryAfter}
		}
		c.logger.Warn("slack call failed; retrying", "call", what, "attempt", attempt, "retry_in", wait, "err", err)
		if werr := c.wait(ctx, wait); werr != nil {
			return fmt.Errorf("slack: %s: %w", what, errors.Join(werr, err))
		}
	}
}
