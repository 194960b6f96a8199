package tts

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newChain(t *testing.T, cfg ChainConfig, engines ...Engine) *Chain {
	t.Helper()
	c, err := NewChain(engines, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChainFirstEngineSpeaks(t *testing.T) {
	a, b := &fakeEngine{name: "a"}, &fakeEngine{name: "b"}
	c := newChain(t, ChainConfig{}, a, b)
	got, err := c.Synthesize(context.Background(), Request{Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != "a:hello" || got.Engine != "a" || got.Format != FormatOggOpus || got.MIMEType != "audio/ogg" || got.Ext != ".ogg" {
		t.Errorf("got %+v", got)
	}
	if b.calls.Load() != 0 {
		t.Error("second engine asked although the first spoke")
	}
	if c.Name() != "a,b" {
		t.Errorf("Name() = %q", c.Name())
	}
}

func TestChainFallback(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first       *fakeEngine
		wantTimeout bool
	}{
		{"fails", &fakeEngine{name: "a", err: errors.New("permission denied")}, false},
		{"hangs past its timeout", &fakeEngine{name: "a", hang: true}, true},
		{"ignores its context", &fakeEngine{name: "a", ignoreCtx: make(chan struct{})}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.first.ignoreCtx != nil {
				defer close(tc.first.ignoreCtx)
			}
			b := &fakeEngine{name: "b"}
			reg := prometheus.NewPedanticRegistry()
			c := newChain(t, ChainConfig{Timeout: 5 * time.Second, Timeouts: map[string]time.Duration{"a": 50 * time.Millisecond}, Registerer: reg}, tc.first, b)
			start := time.Now()
			got, err := c.Synthesize(context.Background(), Request{Text: "hi", Format: FormatWAV})
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Data) != "b:hi" || got.Engine != "b" {
				t.Errorf("got %q from %q, want b's clip", got.Data, got.Engine)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("fallback took %v, want about a's timeout", d)
			}
			result := resultFailure
			if tc.wantTimeout {
				result = resultTimeout
			}
			if n := testutil.ToFloat64(c.metrics.syntheses.WithLabelValues("a", result)); n != 1 {
				t.Errorf("a %s count = %v, want 1", result, n)
			}
			if n := testutil.ToFloat64(c.metrics.syntheses.WithLabelValues("b", resultSuccess)); n != 1 {
				t.Errorf("b success count = %v, want 1", n)
			}
		})
	}
}

func TestChainAllFail(t *testing.T) {
	a := &fakeEngine{name: "google", err: errors.New("rpc error: code = Unavailable")}
	b := &fakeEngine{name: "espeak", hang: true}
	reg := prometheus.NewPedanticRegistry()
	c := newChain(t, ChainConfig{Timeout: 30 * time.Millisecond, Registerer: reg}, a, b)
	_, err := c.Synthesize(context.Background(), Request{Text: "hi"})
	var ce *ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *ChainError", err)
	}
	msg := err.Error()
	for _, want := range []string{"no engine could speak", "google: rpc error: code = Unavailable", "espeak: timed out after 30ms"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if len(ce.Failures) != 2 || ce.Failures[0].Timeout || !ce.Failures[1].Timeout {
		t.Errorf("failures = %+v", ce.Failures)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is does not see the timed-out engine's deadline")
	}
	if n := testutil.ToFloat64(c.metrics.requests.WithLabelValues(requestFailed)); n != 1 {
		t.Errorf("failed requests = %v", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
}

func TestChainStopsWhenCallerGivesUp(t *testing.T) {
	a, b := &fakeEngine{name: "a", hang: true}, &fakeEngine{name: "b"}
	c := newChain(t, ChainConfig{Timeout: time.Minute}, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := c.Synthesize(ctx, Request{Text: "hi"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	if b.calls.Load() != 0 {
		t.Error("b asked after the caller gave up")
	}
	if !strings.Contains(err.Error(), "a: ") {
		t.Errorf("error %q does not say what a did", err)
	}
}

func TestChainCache(t *testing.T) {
	a := &fakeEngine{name: "a"}
	cache, err := NewCache(CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := newChain(t, ChainConfig{Cache: cache}, a)
	req := Request{Text: "Critical. Disk latency.", Voice: "v", Language: "en-US", Rate: 1, Format: FormatMP3}
	first, err := c.Synthesize(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Synthesize(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if a.calls.Load() != 1 {
		t.Errorf("engine called %d times, want 1 (second from cache)", a.calls.Load())
	}
	if string(first.Data) != string(second.Data) || second.Format != FormatMP3 {
		t.Errorf("cached clip differs: %+v vs %+v", first, second)
	}
	// Rate 0 means 1: same clip.
	req.Rate = 0
	if _, err := c.Synthesize(context.Background(), req); err != nil || a.calls.Load() != 1 {
		t.Errorf("rate 0 not the same as rate 1: calls=%d err=%v", a.calls.Load(), err)
	}
	// Anything else that changes the audio is another clip.
	for _, mod := range []func(r *Request){
		func(r *Request) { r.Text += "!" },
		func(r *Request) { r.Voice = "w" },
		func(r *Request) { r.Language = "en-GB" },
		func(r *Request) { r.Rate = 1.2 },
		func(r *Request) { r.Format = FormatWAV },
		func(r *Request) { r.SSML = true },
	} {
		before := a.calls.Load()
		r := req
		mod(&r)
		if _, err := c.Synthesize(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if a.calls.Load() != before+1 {
			t.Errorf("request %+v served from the cache", r)
		}
	}
	if n := testutil.ToFloat64(c.metrics.requests.WithLabelValues(requestCached)); n != 2 {
		t.Errorf("cached requests = %v, want 2", n)
	}
}

func TestChainCacheKeyHasEngineOrder(t *testing.T) {
	req := Request{Text: "x"}
	if CacheKey(req, []string{"google", "espeak"}) == CacheKey(req, []string{"espeak", "google"}) {
		t.Error("engine order not in the key")
	}
	if CacheKey(req, []string{"a"}) != CacheKey(Request{Text: "x", Rate: 1, Format: FormatOggOpus}, []string{"a"}) {
		t.Error("key of a request differs from that of the same request with defaults spelled out")
	}
}

func TestChainFallbackClipIsTransient(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cache, err := NewCache(CacheConfig{Dir: t.TempDir(), TransientTTL: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeEngine{name: "a", err: errors.New("down")}
	b := &fakeEngine{name: "b"}
	c := newChain(t, ChainConfig{Cache: cache}, a, b)
	req := Request{Text: "hi"}
	if got, _ := c.Synthesize(context.Background(), req); got.Engine != "b" {
		t.Fatalf("spoken by %q", got.Engine)
	}
	if got, _ := c.Synthesize(context.Background(), req); got.Engine != "b" || b.calls.Load() != 1 || a.calls.Load() != 1 {
		t.Fatalf("fallback clip not cached: engine %q, a %d b %d calls", got.Engine, a.calls.Load(), b.calls.Load())
	}
	// a recovers; after the TTL the chain asks it again.
	a.err = nil
	now = now.Add(2 * time.Minute)
	if got, _ := c.Synthesize(context.Background(), req); got.Engine != "a" {
		t.Errorf("after the TTL spoken by %q, want a", got.Engine)
	}
}

func TestNewChainErrors(t *testing.T) {
	if _, err := NewChain(nil, ChainConfig{}); err == nil {
		t.Error("empty chain accepted")
	}
	if _, err := NewChain([]Engine{&fakeEngine{name: "a"}, &fakeEngine{name: "a"}}, ChainConfig{}); err == nil {
		t.Error("duplicate engine accepted")
	}
	if _, err := NewChain([]Engine{&fakeEngine{name: "a"}}, ChainConfig{Timeouts: map[string]time.Duration{"b": time.Second}}); err == nil {
		t.Error("timeout for an engine not in the chain accepted")
	}
}

func TestChainRejectsBadRequests(t *testing.T) {
	a := &fakeEngine{name: "a"}
	c := newChain(t, ChainConfig{}, a)
	for _, req := range []Request{{Text: "  "}, {Text: "x", Format: 99}, {Text: "x", Rate: -1}} {
		if _, err := c.Synthesize(context.Background(), req); err == nil {
			t.Errorf("%+v accepted", req)
		}
	}
	if a.calls.Load() != 0 {
		t.Error("engine asked for a bad request")
	}
}

// closer counts Close calls.
type closer struct {
	fakeEngine
	closed int
}

func (c *closer) Close() error { c.closed++; return nil }

func TestChainClose(t *testing.T) {
	cl := &closer{fakeEngine: fakeEngine{name: "g"}}
	c := newChain(t, ChainConfig{}, cl, &fakeEngine{name: "e"})
	if err := c.Close(); err != nil || cl.closed != 1 {
		t.Errorf("Close: err=%v closed=%d", err, cl.closed)
	}
}

func TestChainMetricsSurviveASecondChain(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c1 := newChain(t, ChainConfig{Registerer: reg}, &fakeEngine{name: "a"})
	c2 := newChain(t, ChainConfig{Registerer: reg}, &fakeEngine{name: "a"})
	for _, c := range []*Chain{c1, c2} {
		if _, err := c.Synthesize(context.Background(), Request{Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := testutil.ToFloat64(c2.metrics.requests.WithLabelValues(requestSynthesized)); n != 2 {
		t.Errorf("synthesized = %v, want 2 (shared counter)", n)
	}
}
