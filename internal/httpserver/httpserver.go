// Package httpserver builds mciv's HTTP servers (/metrics, Slack
// interactivity, Twilio webhooks) with every limit set: header, read,
// write and idle timeouts, a header size cap and a body size cap, so that
// a slow or oversized request cannot hold a server's connections or memory.
package httpserver

import (
	"net/http"
	"time"
)

// Limits bounds what one client may cost a server. The zero value of a
// field means its default.
type Limits struct {
	ReadHeaderTimeout time.Duration // default 5s
	ReadTimeout       time.Duration // whole request, body included; default 10s
	WriteTimeout      time.Duration // default 30s
	IdleTimeout       time.Duration // keep-alive; default 60s
	MaxHeaderBytes    int           // default 16 KiB
	MaxBodyBytes      int64         // default 1 MiB
}

// Defaults are the limits of every mciv HTTP server.
var Defaults = Limits{
	ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
	IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10, MaxBodyBytes: 1 << 20,
}

func (l Limits) withDefaults() Limits {
	d := Defaults
	if l.ReadHeaderTimeout > 0 {
		d.ReadHeaderTimeout = l.ReadHeaderTimeout
	}
	if l.ReadTimeout > 0 {
		d.ReadTimeout = l.ReadTimeout
	}
	if l.WriteTimeout > 0 {
		d.WriteTimeout = l.WriteTimeout
	}
	if l.IdleTimeout > 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	if l.MaxBodyBytes > 0 {
		d.MaxBodyBytes = l.MaxBodyBytes
	}
	return d
}

// New returns a server for h with the limits l (zero fields: Defaults).
// A request body larger than MaxBodyBytes fails to read (the handler
// answers 400 or 413), a header larger than MaxHeaderBytes gets 431.
func New(h http.Handler, l Limits) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           http.MaxBytesHandler(h, l.MaxBodyBytes),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}
