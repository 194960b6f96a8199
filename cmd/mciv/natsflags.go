package main

import (
	"context"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/tlsconf"
	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"
)

// defaultNATSURL is where the CLI looks for NATS when neither --nats nor
// MCIV_NATS_URL says: the embedded server of `mciv up` on this host.
const defaultNATSURL = "nats://127.0.0.1:4222"

// natsFlags are the connection flags every command that talks to NATS
// shares: --nats (default $MCIV_NATS_URL, then the local `mciv up`) and
// --creds.
type natsFlags struct {
	url, creds string
	tls        tlsconf.Config
}

// add registers the flags on fs (a command's Flags or PersistentFlags).
func (f *natsFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "nats", "", "NATS URL (default $MCIV_NATS_URL, else "+defaultNATSURL+")")
	fs.StringVar(&f.creds, "creds", "", "NATS credentials file")
	fs.StringVar(&f.tls.CAFile, "tls-ca", "", "CA file of the NATS servers' certificates (TLS)")
	fs.StringVar(&f.tls.CertFile, "tls-cert", "", "client certificate (mutual TLS)")
	fs.StringVar(&f.tls.KeyFile, "tls-key", "", "client key (mutual TLS)")
}

// URL is the server to connect to: --nats, else MCIV_NATS_URL, else the
// local default.
func (f *natsFlags) URL(getenv func(string) string) string {
	if f.url != "" {
		return f.url
	}
	if u := getenv("MCIV_NATS_URL"); u != "" {
		return u
	}
	return defaultNATSURL
}

// connect connects to the server the flags name, as the client name.
func (f *natsFlags) connect(ctx context.Context, e *env, name string) (*nats.Conn, error) {
	tc, err := f.tls.Client()
	if err != nil {
		return nil, err
	}
	return bus.Connect(ctx, f.URL(e.getenv), bus.ConnectOptions{Name: name, CredsFile: f.creds, Logger: e.logger(),
		Secure: bus.Secure{TLS: tc}})
}
