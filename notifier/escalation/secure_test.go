package escalation

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/phone/twilio/twiliotest"
)

// secureBus is an embedded server enforcing the shipped role permissions
// of a fresh trust root, with the shared streams provisioned.
type secureBus struct {
	trust *auth.Trust
	url   string
}

func startSecureBus(t *testing.T) *secureBus {
	t.Helper()
	trust, err := auth.Init(filepath.Join(t.TempDir(), "auth"), auth.InitOptions{MaxStore: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := bus.StartEmbedded(t.Context(), bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		EmbeddedSecure: bus.EmbeddedSecure{Auth: trust.ConfigureServer, MaxStore: 1 << 30}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	sb := &secureBus{trust: trust, url: emb.URL()}
	js, _ := sb.conn(t, auth.Admin, "provision")
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return sb
}

// conn connects with a fresh credential of role named name, and returns
// JetStream on it and a signer of the same credential.
func (sb *secureBus) conn(t *testing.T, role auth.Role, name string) (jetstream.JetStream, *auth.Signer) {
	t.Helper()
	c, err := sb.trust.Issue(auth.Identity{Role: role, Cluster: "payments", Name: name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(sb.url, nats.UserJWTAndSeed(c.JWT, string(c.Seed)),
		nats.CustomInboxPrefix(auth.InboxPrefix(role, "payments", name)))
	if err != nil {
		t.Fatalf("%s connects: %v", role, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSigner(c.JWT, c.Seed)
	if err != nil {
		t.Fatal(err)
	}
	return js, s
}

// TestSecurityForgedAcksDoNotStopTheEscalation: on a server enforcing the
// shipped permissions, acknowledgements the notifier did not make for a
// person (unsigned, tampered, an operator in someone else's name or
// claiming Slack, for another cluster) are refused, counted, audited on
// MCIV_ACTIONS, and the escalation goes on calling. An operator's signed
// ack in its own name stops it; a phone key's ack goes out signed as the
// notifier's.
func TestSecurityForgedAcksDoNotStopTheEscalation(t *testing.T) {
	sb := startSecureBus(t)
	notifierJS, notifierSigner := sb.conn(t, auth.Notifier, "mon-1")
	operatorJS, mallory := sb.conn(t, auth.Operator, "mallory")
	_, aliceOp := sb.conn(t, auth.Operator, "alice")
	adminJS, _ := sb.conn(t, auth.Admin, "observer")
	v, err := auth.NewVerifier(sb.trust.AccountJWT)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	e.eng.opts.Acks = JetStreamAcks{JS: notifierJS, Signer: notifierSigner}
	e.eng.opts.AckChecker = auth.NewAckChecker(v, true)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.eng.ConsumeAcks(ctx, notifierJS, "") }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	_ = e.eng.Notify(t.Context(), firing("fp1"))
	_ = e.eng.Notify(t.Context(), firing("fp2"))
	e.at(5 * time.Minute)
	e.wantCalled("at 5m", alice, alice)
	e.clock.Set(6 * time.Minute)

	ack := func(id, by, via, cluster string) wire.Ack {
		return wire.Ack{Fingerprint: "fp1", Cluster: cluster, Action: wire.AckAcknowledge, By: by, Via: via,
			At: t0.Add(6 * time.Minute), ID: id}
	}
	publish := func(js jetstream.JetStream, s *auth.Signer, a wire.Ack, tamper bool) {
		t.Helper()
		data, err := wire.EncodeAck(&a)
		if err != nil {
			t.Fatal(err)
		}
		m := &nats.Msg{Subject: wire.AckSubject("payments"), Data: data}
		if err := s.Sign(m); err != nil {
			t.Fatal(err)
		}
		if tamper {
			m.Data = []byte(strings.Replace(string(m.Data), "U0EVE", "U0BOB", 1))
		}
		if _, err := js.PublishMsg(t.Context(), m, jetstream.WithMsgID(a.ID)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		js     jetstream.JetStream
		s      *auth.Signer
		ack    wire.Ack
		tamper bool
		reason string
	}{
		{"unsigned, from the notifier's credentials", notifierJS, nil, ack("unsigned", "U0BOB", "slack", "payments"), false, auth.AckUnsigned},
		{"hand-published by an operator", operatorJS, nil, ack("hand", "U0BOB", "slack", "payments"), false, auth.AckUnsigned},
		{"tampered after signing", notifierJS, notifierSigner, ack("tampered", "U0EVE", "slack", "payments"), true, auth.AckUnsigned},
		{"an operator in a Slack user's name", operatorJS, mallory, ack("impersonation", "U0BOB", "slack", "payments"), false, auth.AckImpersonation},
		{"another cluster's ack on this subject", notifierJS, notifierSigner, ack("other", "U0BOB", "slack", "other"), false, auth.AckCluster},
	} {
		before := e.eng.AcksRefused(tc.reason)
		publish(tc.js, tc.s, tc.ack, tc.tamper)
		if !waitFor(t, func() bool { return e.eng.AcksRefused(tc.reason) > before }) {
			t.Fatalf("%s: not refused as %s", tc.name, tc.reason)
		}
		if st, _ := e.eng.Escalation("fp1"); st.Stopped {
			t.Fatalf("%s stopped the escalation: %s", tc.name, st.StopReason)
		}
	}
	// Each refusal is on the audit stream.
	var audits int
	if !waitFor(t, func() bool {
		audits = countRefusedAcks(t, adminJS)
		return audits == 5
	}) {
		t.Errorf("%d refused-ack records on %s, want 5", audits, bus.ActionsStream)
	}
	// The escalation goes on: the next step calls again.
	e.at(20 * time.Minute)
	if st, _ := e.eng.Escalation("fp1"); st.Stopped || len(st.Calls) < 2 {
		t.Fatalf("escalation after the forged acks: stopped %v, %d calls", st.Stopped, len(st.Calls))
	}

	// Positive control: an operator's signed ack in its own name.
	e.clock.Set(21 * time.Minute)
	a := ack("alice", "alice", "cli", "payments")
	a.At = t0.Add(21 * time.Minute)
	publish(operatorJS, aliceOp, a, false)
	waitStopped(t, e.eng, "fp1")
	if st, _ := e.eng.Escalation("fp1"); st.StopReason != "acknowledged by alice via cli" {
		t.Errorf("stop reason %q", st.StopReason)
	}
	// A phone key's ack is signed as the notifier's.
	st2, _ := e.eng.Escalation("fp2")
	var fp2 twiliotest.Call
	for _, c := range e.fake.Calls() {
		if c.SID == string(st2.Calls[len(st2.Calls)-1].ID) {
			fp2 = c
		}
	}
	if _, err := e.fake.Press(t.Context(), fp2, "1"); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, e.eng, "fp2")
	stream, err := adminJS.Stream(t.Context(), bus.AcksStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(t.Context(), wire.AckSubject("payments"))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(msg.Subject, msg.Data, msg.Header); err != nil || id.Role != auth.Notifier || !strings.Contains(string(msg.Data), `"via":"phone"`) {
		t.Errorf("the phone ack on the stream: %s, signer %+v %v", msg.Data, id, err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) bool {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// countRefusedAcks counts the refused-ack audit records on MCIV_ACTIONS.
func countRefusedAcks(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, bus.ActionsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.AckActionSubject("payments")}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		msgs, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range msgs.Messages() {
			got++
			if a, err := wire.DecodeAction(m.Data()); err == nil && a.Kind == wire.ActionKindAck && a.Decision == "refused" {
				n++
			}
		}
		if got == 0 {
			return n
		}
	}
}
