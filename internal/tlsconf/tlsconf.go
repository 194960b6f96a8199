// Package tlsconf is the one TLS configuration of mciv: NATS clients, the
// embedded NATS server and the failover drivers' HTTP clients read the same
// YAML shape and build their crypto/tls configuration here.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config is a `tls:` section: of NATS clients and the embedded NATS
// server (nats.tls, nats.server_tls) and of the failover drivers' HTTP
// clients (failover.TLSConfig is this type). The zero value means no TLS.
type Config struct {
	// CAFile holds the PEM certificates that sign the peer: the servers a
	// client trusts, the clients a server verifies. Empty: the system roots
	// (clients) or no client verification (servers).
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// CertFile and KeyFile are this side's certificate and key (PEM): a
	// server's, or a client's for mutual TLS.
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
	// VerifyClients makes a server require and verify client certificates
	// against CAFile.
	VerifyClients bool `yaml:"verify_clients" json:"verify_clients,omitempty"`
	// ServerName overrides the name a client checks in the server's
	// certificate (default: the host it dials).
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// InsecureSkipVerify makes a client accept any server certificate.
	// For labs only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// Enabled says whether any TLS is configured.
func (c Config) Enabled() bool {
	return c.CAFile != "" || c.CertFile != "" || c.KeyFile != ""
}

// Validate checks that the files exist and make sense together.
func (c Config) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	if c.VerifyClients && c.CAFile == "" {
		errs = append(errs, errors.New("tls: verify_clients needs ca_file, the CA that signs client certificates"))
	}
	for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Client returns the configuration of a client, nil when no option is
// set.
func (c Config) Client() (*tls.Config, error) {
	if c == (Config{}) {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // an explicit operator choice, documented as lab-only
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate %s: %w", c.CertFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// Server returns the configuration of a server, nil when c is not
// enabled. A server needs a certificate and key.
func (c Config) Server() (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.CertFile == "" {
		return nil, errors.New("tls: a server needs cert_file and key_file")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: server certificate %s: %w", c.CertFile, err)
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		t.ClientCAs = pool
		if c.VerifyClients {
			t.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			t.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return t, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", path)
	}
	return pool, nil
}
