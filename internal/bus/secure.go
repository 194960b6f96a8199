package bus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mciv/mciv/internal/auth"
	"github.com/nats-io/nats.go"
)

// Secure is the part of ConnectOptions that trust on the bus adds.
type Secure struct {
	// UserJWT and UserSeed are a credential held in memory (what `mciv up`
	// issues to its own parts); CredsFile is the same from a file.
	UserJWT  string
	UserSeed []byte
	// InboxPrefix is where replies come back; empty derives it from the
	// credential (auth.InboxPrefix of its identity), which is the only
	// inbox the server lets the client subscribe to.
	InboxPrefix string
	// TLS, when set, is used to connect (and required).
	TLS *tls.Config
}

// options turns s (and the credentials file, for its identity) into
// nats.go options.
func (s Secure) options(credsFile string, logger *slog.Logger) ([]nats.Option, error) {
	var o []nats.Option
	inbox := s.InboxPrefix
	switch {
	case s.UserJWT != "":
		seed := s.UserSeed
		o = append(o, nats.UserJWTAndSeed(s.UserJWT, string(seed)))
		if inbox == "" {
			if id, err := auth.IdentityOf(s.UserJWT); err == nil {
				inbox = auth.InboxPrefix(id.Role, id.Cluster, id.Name)
			}
		}
	case credsFile != "":
		if err := auth.CheckSecretFile(credsFile); err != nil {
			logger.Warn("nats credentials", "warning", err)
		}
		if inbox == "" {
			if id, err := auth.IdentityOfCredsFile(credsFile); err == nil {
				inbox = auth.InboxPrefix(id.Role, id.Cluster, id.Name)
			} else {
				logger.Debug("nats credentials carry no mciv identity; default inbox", "err", err)
			}
		}
	}
	if inbox != "" {
		o = append(o, nats.CustomInboxPrefix(inbox))
	}
	if s.TLS != nil {
		o = append(o, nats.Secure(s.TLS))
	}
	o = append(o, nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			logger.Warn("nats refused an operation this client's role does not allow", "err", err)
			return
		}
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		logger.Warn("nats async error", "subject", subject, "err", err)
	}))
	return o, nil
}

// errNoAuth is the error of a non-loopback embedded server without auth.
func errNoAuth(listen string) error {
	return fmt.Errorf("embedded nats: refusing to listen on %s without authentication: anyone who reaches it could forge alerts, acks and silences; "+
		"run `mciv auth init --dir /etc/mciv/auth` and set nats.auth: /etc/mciv/auth, or listen on 127.0.0.1", listen)
}

// DefaultMaxStore bounds the embedded server's JetStream files when
// EmbeddedSecure.MaxStore is 0.
const DefaultMaxStore int64 = 1 << 30

// EmbeddedSecure is the part of EmbeddedOptions that trust on the bus adds.
type EmbeddedSecure struct {
	// Auth, when set, turns authentication on (auth.Trust.ConfigureServer).
	// Without it the server refuses to listen beyond loopback.
	Auth func(*server.Options) error
	// MaxStore bounds JetStream's file store in bytes; 0 means
	// DefaultMaxStore.
	MaxStore int64
	// TLS, when set, is required of every client (tlsconf.Config.Server).
	TLS *tls.Config
}

// apply sets o up, or says why the server must not start.
func (s EmbeddedSecure) apply(o *server.Options) error {
	if s.Auth == nil && !isLoopback(o.Host) {
		return errNoAuth(net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	}
	if s.Auth != nil {
		if err := s.Auth(o); err != nil {
			return fmt.Errorf("embedded nats: %w", err)
		}
	}
	o.JetStreamMaxStore = s.MaxStore
	if o.JetStreamMaxStore == 0 {
		o.JetStreamMaxStore = DefaultMaxStore
	}
	o.JetStreamMaxMemory = 256 << 20
	o.MaxPayload = 1 << 20
	if s.TLS != nil {
		o.TLSConfig = s.TLS
		o.TLS = true
		o.TLSVerify = s.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		o.TLSTimeout = 2
	}
	return nil
}

// isLoopback says whether host (of a listen address) is only reachable
// from this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
