package escalation

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

// TestAcksFromJetStream consumes MCIV_ACKS: a Slack button's Ack stops the
// escalation, and a phone key's Ack is published there.
func TestAcksFromJetStream(t *testing.T) {
	js := startJetStream(t)
	e := newEnv(t, exampleConfig(t), nil, nil, nil)
	e.eng.opts.Acks = JetStreamAcks{JS: js}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.eng.ConsumeAcks(ctx, js, "") }()
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

	// fp1: a Slack button.
	slack := JetStreamAcks{JS: js}
	e.clock.Set(6 * time.Minute)
	ack := &wire.Ack{Fingerprint: "fp1", Cluster: "payments", Action: wire.AckAcknowledge, By: "U0BOB", Via: "slack", At: t0.Add(6 * time.Minute), ID: "slack-1"}
	if err := slack.PublishAck(t.Context(), ack); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, e.eng, "fp1")
	if st, _ := e.eng.Escalation("fp1"); st.StopReason != "acknowledged by U0BOB via slack" {
		t.Errorf("stop reason %q", st.StopReason)
	}

	// fp2: alice presses 1; the Ack is on the stream.
	calls := e.fake.Calls()
	if _, err := e.fake.Press(t.Context(), calls[1], "1"); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, e.eng, "fp2")
	stream, err := js.Stream(t.Context(), bus.AcksStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(t.Context(), "mciv.acks.payments")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), `"via":"phone"`) || !strings.Contains(string(msg.Data), `"fingerprint":"fp2"`) {
		t.Errorf("last ack on the stream: %s", msg.Data)
	}
	e.at(time.Hour)
	e.wantCalled("after both acks", alice, alice)
}
