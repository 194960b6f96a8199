package auth

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
)

func TestAckChecker(t *testing.T) {
	tr, err := Init(filepath.Join(t.TempDir(), "auth"), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Init(filepath.Join(t.TempDir(), "other"), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(tr.AccountJWT)
	if err != nil {
		t.Fatal(err)
	}
	signer := func(tr *Trust, role Role, cluster, name string) *Signer {
		t.Helper()
		c, err := tr.Issue(Identity{Role: role, Cluster: cluster, Name: name}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSigner(c.JWT, c.Seed)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	notifier := signer(tr, Notifier, "pay", "mon-1")
	alice := signer(tr, Operator, "pay", "alice")
	mallory := signer(tr, Operator, "other", "mallory")
	collector := signer(tr, Collector, "pay", "db-1")
	foreign := signer(other, Notifier, "pay", "mon-1")

	ack := func(by, via, cluster string) *wire.Ack {
		return &wire.Ack{Fingerprint: "fp", Cluster: cluster, Action: wire.AckApprove, By: by, Via: via, ID: "x", At: time.Now()}
	}
	check := func(c *AckChecker, s *Signer, subject string, a *wire.Ack) (Identity, error) {
		t.Helper()
		data, err := wire.EncodeAck(a)
		if err != nil {
			t.Fatal(err)
		}
		m := &nats.Msg{Subject: subject, Data: data}
		if err := s.Sign(m); err != nil {
			t.Fatal(err)
		}
		return c.Check(m.Subject, m.Data, m.Header, a)
	}
	strict, lenient := NewAckChecker(v, false), NewAckChecker(v, true)
	for _, tc := range []struct {
		name    string
		c       *AckChecker
		s       *Signer
		subject string
		ack     *wire.Ack
		reason  string // "" accepted
	}{
		{"notifier slack", strict, notifier, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "pay"), ""},
		{"notifier phone", strict, notifier, "mciv.acks.pay", ack("Alice", wire.ViaPhone, "pay"), ""},
		{"notifier claims cli", strict, notifier, "mciv.acks.pay", ack("alice", wire.ViaCLI, "pay"), AckImpersonation},
		{"unsigned", strict, nil, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "pay"), AckUnsigned},
		{"another trust root", strict, foreign, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "pay"), AckUnsigned},
		{"collector", lenient, collector, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "pay"), AckRole},
		{"operator not allowed", strict, alice, "mciv.acks.pay", ack("alice", wire.ViaCLI, "pay"), AckRole},
		{"operator own name", lenient, alice, "mciv.acks.pay", ack("alice", wire.ViaCLI, "pay"), ""},
		{"operator in an approver's name", lenient, alice, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "pay"), AckImpersonation},
		{"operator of another cluster", lenient, mallory, "mciv.acks.pay", ack("mallory", wire.ViaCLI, "pay"), AckCluster},
		{"payload cluster is not the subject's", strict, notifier, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "other"), AckCluster},
		{"no trust root on a secured bus", NewUnverifiableAckChecker("no trust root"), notifier, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "pay"), AckUnsigned},
		{"auth off accepts", NewAckChecker(nil, false), nil, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "pay"), ""},
		{"auth off still checks the cluster", NewAckChecker(nil, false), nil, "mciv.acks.pay", ack("U0ALICE", wire.ViaSlack, "x"), AckCluster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := check(tc.c, tc.s, tc.subject, tc.ack)
			var r *AckRefusal
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason == "":
				if tc.c.Secured() && id.Name == "" {
					t.Fatalf("accepted without an identity")
				}
			case !errors.As(err, &r) || r.Reason != tc.reason:
				t.Fatalf("err %v, want reason %s", err, tc.reason)
			}
		})
	}
}
