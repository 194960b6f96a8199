package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnectOptions says how to reach NATS.
type ConnectOptions struct {
	// Name identifies the client to the server (e.g. "mciv-collector db-1").
	Name string
	// CredsFile is a NATS credentials file (per-host user JWT and seed).
	CredsFile string
	// NKeyFile is a file with an nkey seed.
	NKeyFile string
	// Logger gets disconnect and reconnect messages.
	Logger *slog.Logger
	// Secure holds credentials given in memory, the inbox and TLS
	// (secure.go).
	Secure
}

// How often a client pings its server, and how many unanswered pings
// make it give the server up.
const (
	pingInterval        = 5 * time.Second
	maxPingsOutstanding = 2
)

// Connect connects to url, retrying until ctx ends, and reconnects forever
// after a connection is lost. url may list several seed servers of a
// cluster, separated by commas (nats://a:4222,nats://b:4222); the client
// learns the others from the cluster and fails over between them.
func Connect(ctx context.Context, url string, opts ConnectOptions) (*nats.Conn, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nopts := []nats.Option{
		nats.Name(opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// A server that stops answering (a node cut off by the network,
		// not closed) is left after about PingInterval × (MaxPingsOutstanding
		// + 1) = 15 s, not the default 2 min × 2: the client reconnects to
		// another node of the cluster.
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOutstanding),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
	}
	if opts.CredsFile != "" {
		nopts = append(nopts, nats.UserCredentials(opts.CredsFile))
	}
	sopts, err := opts.Secure.options(opts.CredsFile, logger)
	if err != nil {
		return nil, err
	}
	nopts = append(nopts, sopts...)
	if opts.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(opts.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey file %s: %w", opts.NKeyFile, err)
		}
		nopts = append(nopts, o)
	}
	for {
		nc, err := nats.Connect(url, nopts...)
		if err == nil {
			return nc, nil
		}
		// Authentication problems do not fix themselves: say so at once.
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			return nil, fmt.Errorf("nats connect %s: %w", redact(url), err)
		}
		// Nor do refused certificates.
		if tlsRefused(err) {
			return nil, fmt.Errorf("nats connect %s: TLS refused (check the CA and client certificate: nats.tls ca_file, cert_file, key_file; --tls-ca, --tls-cert, --tls-key): %w", redact(url), err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nats connect %s: %w (last error: %v)", redact(url), ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// tlsRefused reports whether err is a TLS handshake that failed for good:
// a certificate this side or the server does not accept, or TLS wanted by
// one side only.
func tlsRefused(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "remote error: tls:") || strings.Contains(msg, "tls: failed to verify certificate")
}

// redact removes user:password from a URL, or from each of a
// comma-separated list of seed URLs, for logs and errors.
func redact(url string) string {
	if strings.Contains(url, ",") {
		parts := strings.Split(url, ",")
		for i, p := range parts {
			parts[i] = redactOne(strings.TrimSpace(p))
		}
		return strings.Join(parts, ",")
	}
	return redactOne(url)
}

func redactOne(url string) string {
	for i := 0; i+3 <= len(url); i++ {
		if url[i:i+3] == "://" {
			rest := url[i+3:]
			for j := 0; j < len(rest); j++ {
				if rest[j] == '@' {
					return url[:i+3] + "***@" + rest[j+1:]
				}
				if rest[j] == '/' {
					break
				}
			}
			break
		}
	}
	return url
}

// JetStream returns a JetStream context on nc.
func JetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return js, nil
}
