// Package bus sets up mciv's messaging: the embedded nats-server with
// JetStream for the all-in-one mode, client connections, and the JetStream
// streams that carry alerts and actions.
package bus

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures the embedded NATS server.
type EmbeddedOptions struct {
	// DataDir holds JetStream's files; it survives restarts.
	DataDir string
	// Listen is host:port for clients; port 0 picks a free port.
	// Empty means 127.0.0.1:4222.
	Listen string
	// ServerName names the server in logs and JetStream meta data.
	ServerName string
	// EmbeddedSecure: authentication, TLS and store limits (secure.go).
	EmbeddedSecure
}

// Embedded is a running embedded nats-server.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts nats-server in this process with JetStream storing
// into opts.DataDir, and waits until it accepts connections or ctx ends.
func StartEmbedded(ctx context.Context, opts EmbeddedOptions, logger *slog.Logger) (*Embedded, error) {
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if opts.DataDir == "" {
		return nil, fmt.Errorf("embedded nats: a data directory is required for JetStream")
	}
	name := opts.ServerName
	if name == "" {
		name = "mciv"
	}
	sopts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.DataDir,
		NoSigs:     true,
		NoLog:      true,
	}
	if err := opts.EmbeddedSecure.apply(sopts); err != nil {
		return nil, err
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go srv.Start()
	deadline := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	if !srv.ReadyForConnections(deadline) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready to accept connections on %s within %s", listen, deadline)
	}
	if logger != nil {
		logger.Info("embedded nats-server started", "url", srv.ClientURL(), "jetstream_dir", opts.DataDir)
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits until it has stopped.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
