package auth

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestSignVerify(t *testing.T) {
	tr, err := Init(filepath.Join(t.TempDir(), "auth"), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(tr.AccountJWT)
	if err != nil {
		t.Fatal(err)
	}
	signer := func(tr *Trust, role Role, name string) *Signer {
		t.Helper()
		c, err := tr.Issue(Identity{Role: role, Cluster: "pay", Name: name}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSigner(c.JWT, c.Seed)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	msg := func() *nats.Msg {
		return &nats.Msg{Subject: "mciv.acks.pay", Data: []byte(`{"action":"approve","by":"U0ALICE"}`)}
	}

	// The notifier's signature names the notifier role.
	m := msg()
	if err := signer(tr, Notifier, "n-1").Sign(m); err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(m.Subject, m.Data, m.Header)
	if err != nil || id != (Identity{Role: Notifier, Cluster: "pay", Name: "n-1"}) {
		t.Fatalf("Verify = %+v, %v", id, err)
	}
	// Changed payload or subject: refused.
	if _, err := v.Verify(m.Subject, []byte(`{"action":"approve","by":"U0MALLORY"}`), m.Header); err == nil {
		t.Error("a changed payload verified")
	}
	if _, err := v.Verify("mciv.acks.other", m.Data, m.Header); err == nil {
		t.Error("a signature moved to another subject verified")
	}
	// The operator signs as the operator, whatever it claims.
	op := msg()
	if err := signer(tr, Operator, "mallory").Sign(op); err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(op.Subject, op.Data, op.Header); err != nil || id.Role != Operator {
		t.Errorf("operator's signature = %+v, %v; want role operator", id, err)
	}
	// The operator's key under the notifier's JWT: refused.
	mixed := msg()
	mixed.Header = nats.Header{}
	mixed.Header.Set(HeaderSigner, m.Header.Get(HeaderSigner))
	mixed.Header.Set(HeaderSignature, op.Header.Get(HeaderSignature))
	if _, err := v.Verify(mixed.Subject, mixed.Data, mixed.Header); err == nil {
		t.Error("the operator's signature under the notifier's JWT verified")
	}
	// Unsigned, and signed under another trust root: refused.
	if _, err := v.Verify(m.Subject, m.Data, nil); err == nil {
		t.Error("an unsigned message verified")
	}
	other, err := Init(filepath.Join(t.TempDir(), "other"), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := msg()
	if err := signer(other, Notifier, "n-1").Sign(f); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(f.Subject, f.Data, f.Header); err == nil {
		t.Error("a notifier of another trust root verified")
	}
	// A creds file signs too.
	c, _ := tr.Issue(Identity{Role: Notifier, Cluster: "pay", Name: "n-2"}, 0)
	data, _ := c.CredsFile()
	path := filepath.Join(t.TempDir(), "n.creds")
	if err := WriteSecret(path, data); err != nil {
		t.Fatal(err)
	}
	s, err := SignerFromCredsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cm := msg()
	if err := s.Sign(cm); err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(cm.Subject, cm.Data, cm.Header); err != nil || id.Name != "n-2" {
		t.Errorf("creds-file signature = %+v, %v", id, err)
	}
}
