// Package oneshot is the HTTP plumbing of the failover drivers: clients
// that never resend a POST, and a POST that tells "certainly not sent"
// apart from "may have reached the server".
package oneshot

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// MaxBody bounds how much of a response is read.
const MaxBody = 1 << 20

// Clients returns a client for reads (keep-alive) and one for actions: a
// fresh connection per request, so net/http never resends it (it retries
// only on reused connections). Neither follows redirects. Timeouts come
// from request contexts, so that a timeout is told apart from the
// caller's cancellation.
func Clients(tlsCfg *tls.Config) (get, post *http.Client) {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	transport := func(keepAlive bool) *http.Transport {
		return &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: 5 * time.Second,
			DisableKeepAlives:   !keepAlive,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     60 * time.Second,
		}
	}
	return &http.Client{Transport: transport(true), CheckRedirect: noRedirect},
		&http.Client{Transport: transport(false), CheckRedirect: noRedirect}
}

// Post sends body to url once, with a Content-Length, within timeout.
// sent is false only when no connection was obtained (refused, DNS, TLS
// handshake): the server certainly did not see the request. A timeout
// error also matches context.DeadlineExceeded.
func Post(ctx context.Context, c *http.Client, url string, body []byte, header http.Header,
	timeout time.Duration) (status int, respBody []byte, sent bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, false, fmt.Errorf("POST %s: %w", url, err)
	}
	// bytes.Reader sets ContentLength; without GetBody the body cannot be
	// replayed by net/http.
	req.ContentLength = int64(len(body))
	req.GetBody = nil
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		if IsTimeout(err) && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return 0, nil, connected.Load(), fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if rerr != nil {
		// The status is the answer; a truncated body only loses detail.
		b = append(b, []byte(" [body truncated: "+rerr.Error()+"]")...)
	}
	return resp.StatusCode, b, true, nil
}

// IsTimeout reports whether err is a deadline or network timeout.
func IsTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var unsafeHeader = regexp.MustCompile(`[^\x20-\x7e]+`)

// HeaderSafe makes s printable ASCII of at most 200 bytes.
func HeaderSafe(s string) string {
	s = strings.TrimSpace(unsafeHeader.ReplaceAllString(s, " "))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Trim shortens a response body for errors and logs.
func Trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}
