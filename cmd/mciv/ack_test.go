package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
)

// TestAckSignedByTheOperator: on a server enforcing the shipped
// permissions, `mciv ack --creds alice.creds` publishes a resolve made by
// alice via cli, signed so that the readers' AckChecker accepts it; the
// same command in someone else's name is refused before publishing, and a
// collector's credentials may not publish acks at all.
func TestAckSignedByTheOperator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "auth")
	trust, err := auth.Init(dir, auth.InitOptions{MaxStore: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		EmbeddedSecure: bus.EmbeddedSecure{Auth: trust.ConfigureServer, MaxStore: 1 << 30}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	issue := func(role auth.Role, name string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), name+".creds")
		if out, err := runCLI(ctx, "auth", "issue", "--dir", dir, "--role", string(role), "--cluster", "payments", "--name", name, "--out", p); err != nil {
			t.Fatalf("issue %s: %v\n%s", name, err, out)
		}
		return p
	}
	admin := issue(auth.Admin, "ops")
	if out, err := runCLI(ctx, "auth", "provision", "--nats", srv.URL(), "--creds", admin); err != nil {
		t.Fatalf("provision: %v\n%s", err, out)
	}
	alice := issue(auth.Operator, "alice")
	out, err := runCLI(ctx, "ack", "--nats", srv.URL(), "--creds", alice, "--cluster", "payments", "--fingerprint", "5f1c0e2a9b7d3c41", "--resolve")
	if err != nil || !strings.Contains(out, "resolve 5f1c0e2a9b7d3c41 of payments by alice via cli, signed") {
		t.Fatalf("ack: %v\n%s", err, out)
	}
	if _, err := runCLI(ctx, "ack", "--nats", srv.URL(), "--creds", alice, "--cluster", "payments", "--fingerprint", "x", "--by", "U0BOB"); err == nil {
		t.Error("an ack in someone else's name was published")
	}
	col := issue(auth.Collector, "db-1")
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second) // the refused publication gets no answer
	defer ccancel()
	if _, err := runCLI(cctx, "ack", "--nats", srv.URL(), "--creds", col, "--cluster", "payments", "--fingerprint", "x"); err == nil {
		t.Error("a collector published an ack")
	}

	// What the readers see: the stored ack, signed by operator alice.
	c, err := trust.Issue(auth.Identity{Role: auth.Admin, Cluster: "payments", Name: "observer"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.URL(), nats.UserJWTAndSeed(c.JWT, string(c.Seed)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bus.AcksStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, wire.AckSubject("payments"))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := wire.DecodeAck(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(trust.AccountJWT)
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.NewAckChecker(v, true).Check(msg.Subject, msg.Data, msg.Header, ack)
	if err != nil || id.Role != auth.Operator || id.Name != "alice" || ack.By != "alice" || ack.Via != wire.ViaCLI || ack.Action != wire.AckResolve {
		t.Fatalf("stored ack %+v signed by %+v: %v", ack, id, err)
	}
}
