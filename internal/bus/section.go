package bus

import "github.com/mciv/mciv/internal/tlsconf"

// Section is the `nats:` section of mciv's configuration: where the bus is
// and how this process proves who it is.
type Section struct {
	// URL of an existing NATS server or cluster; empty runs the embedded server.
	URL string `yaml:"url"`
	// Listen is where the embedded server accepts clients.
	Listen string `yaml:"listen"`
	// Creds is a NATS credentials file (per-host user).
	Creds string `yaml:"creds"`
	// NKey is a file with an nkey seed.
	NKey string `yaml:"nkey"`
	// Fleet: replicas and the partitioned input stream (fleet.go).
	Fleet `yaml:",inline"`
	// Auth is a trust root directory (`mciv auth init`): the embedded
	// server requires credentials, and `mciv up` issues its parts theirs.
	Auth string `yaml:"auth"`
	// MaxStore bounds the embedded server's JetStream files (bytes; 0:
	// DefaultMaxStore).
	MaxStore int64 `yaml:"max_store"`
	// TLS is how this process's parts connect (CA of the servers, and a
	// client certificate for mutual TLS); for the embedded server too,
	// unless ServerTLS is set.
	TLS tlsconf.Config `yaml:"tls"`
	// ServerTLS is the embedded server's TLS (its certificate and key, the
	// CA of client certificates and verify_clients), when it differs from
	// the parts' client side (a server certificate for the server, client
	// certificates for the parts).
	ServerTLS tlsconf.Config `yaml:"server_tls"`
}

// EmbeddedTLS is the TLS configuration of the embedded server: ServerTLS
// when set, else TLS.
func (s Section) EmbeddedTLS() tlsconf.Config {
	if s.ServerTLS.Enabled() {
		return s.ServerTLS
	}
	return s.TLS
}
