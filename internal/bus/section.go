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
	// TLS for clients and the embedded server.
	TLS tlsconf.Config `yaml:"tls"`
}
