// Package tlslab writes a throwaway certificate authority and the
// certificates it signs, for tests of TLS between mciv's parts.
package tlslab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are the PEM files Write made.
type Files struct {
	// CA is the authority's certificate.
	CA string
	// ServerCert and ServerKey are valid for 127.0.0.1 and localhost,
	// for server authentication.
	ServerCert, ServerKey string
	// ClientCert and ClientKey are for client authentication.
	ClientCert, ClientKey string
}

// Write creates a CA named name and a server and a client certificate it
// signs, valid for an hour, in dir (files name-ca.pem, name-server.pem,
// ...; keys are written 0600).
func Write(dir, name string) (Files, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Files{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Files{}, fmt.Errorf("tlslab: CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Files{}, err
	}
	write := func(file, typ string, der []byte) (string, error) {
		p := filepath.Join(dir, name+"-"+file)
		return p, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	}
	leaf := func(cn string, serial int64, usage x509.ExtKeyUsage) (string, string, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			return "", "", fmt.Errorf("tlslab: %s: %w", cn, err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return "", "", err
		}
		c, err := write(cn+".pem", "CERTIFICATE", der)
		if err != nil {
			return "", "", err
		}
		key, err := write(cn+"-key.pem", "EC PRIVATE KEY", kd)
		return c, key, err
	}
	var f Files
	if f.CA, err = write("ca.pem", "CERTIFICATE", caDER); err != nil {
		return Files{}, err
	}
	if f.ServerCert, f.ServerKey, err = leaf("server", 2, x509.ExtKeyUsageServerAuth); err != nil {
		return Files{}, err
	}
	if f.ClientCert, f.ClientKey, err = leaf("client", 3, x509.ExtKeyUsageClientAuth); err != nil {
		return Files{}, err
	}
	return f, nil
}
