package bus

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
}
