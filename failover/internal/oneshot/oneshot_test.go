package oneshot

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPostIsNeverResent(t *testing.T) {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if r.ContentLength != 5 || len(r.TransferEncoding) > 0 {
			t.Errorf("Content-Length %d, Transfer-Encoding %v", r.ContentLength, r.TransferEncoding)
		}
		_, _ = io.ReadAll(r.Body)
		// Drop the connection without an answer: the ambiguous case.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	_, post := Clients(nil)
	_, _, sent, err := Post(context.Background(), post, srv.URL, []byte("hello"), nil, 5*time.Second)
	if err == nil || !sent {
		t.Fatalf("err = %v, sent = %v; want an error after sending", err, sent)
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

func TestPostNotSentWhenRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	_, post := Clients(nil)
	_, _, sent, err := Post(context.Background(), post, url, []byte("{}"), nil, time.Second)
	if err == nil || sent {
		t.Fatalf("err = %v, sent = %v; want not sent", err, sent)
	}
}

func TestPostTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // then the server notices the client leaving
		<-r.Context().Done()
	}))
	defer srv.Close()
	_, post := Clients(nil)
	_, _, sent, err := Post(context.Background(), post, srv.URL, []byte("{}"), nil, 50*time.Millisecond)
	if !sent || !errors.Is(err, context.DeadlineExceeded) || !IsTimeout(err) {
		t.Fatalf("err = %v, sent = %v; want a sent timeout", err, sent)
	}
}

func TestHeaderSafeAndTrim(t *testing.T) {
	if got := HeaderSafe(" a\r\nb\x00c é "); got != "a b c" {
		t.Fatalf("HeaderSafe = %q", got)
	}
	if got := HeaderSafe(strings.Repeat("x", 300)); len(got) != 200 {
		t.Fatalf("HeaderSafe length %d", len(got))
	}
	if got := Trim([]byte(strings.Repeat("y", 600))); len(got) != 515 {
		t.Fatalf("Trim length %d", len(got))
	}
}
