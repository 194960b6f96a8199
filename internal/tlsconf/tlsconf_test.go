package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, signed by the CA, into dir.
func Certs(t *testing.T, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mciv test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kd)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	serverCert, serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

func TestClientServer(t *testing.T) {
	dir := t.TempDir()
	ca, sc, sk, cc, ck := Certs(t, dir)
	if c, err := (Config{}).Client(); c != nil || err != nil {
		t.Fatalf("zero config: %v %v", c, err)
	}
	srv, err := Config{CAFile: ca, CertFile: sc, KeyFile: sk, VerifyClients: true}.Server()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tlsListen(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { buf := make([]byte, 1); _, _ = c.Read(buf); c.Close() }()
		}
	}()
	good, err := Config{CAFile: ca, CertFile: cc, KeyFile: ck}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(ln.Addr().String(), good); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	noCert, _ := Config{CAFile: ca}.Client()
	if err := handshake(ln.Addr().String(), noCert); err == nil {
		t.Fatal("a client without a certificate was accepted by a verifying server")
	}
	for _, bad := range []Config{{CertFile: sc}, {VerifyClients: true, CertFile: sc, KeyFile: sk}, {CAFile: filepath.Join(dir, "missing.pem")}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
}
