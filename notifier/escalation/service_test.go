package escalation

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/notifier/phone/twilio"
	"github.com/mciv/mciv/notifier/phone/twilio/twiliotest"
)

// TestService runs the whole thing as a notifier would: Twilio's REST API
// is the fake, the callback endpoint listens on loopback, acks and state
// go through JetStream.
func TestService(t *testing.T) {
	js := startJetStream(t)
	fake := twiliotest.Start(t, sid, token)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	th := &thread{}
	svc, err := NewService(t.Context(), ServiceOptions{
		OnCall:     exampleConfig(t),
		Twilio:     twilio.Config{AccountSID: sid, AuthToken: token, From: "+15551230000", PublicURL: "http://" + lis.Addr().String()},
		JS:         js,
		Cluster:    "payments",
		Thread:     th,
		HTTPClient: fake.HTTPClient(),
	})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	svc.Engine().opts.Now = clk.Now
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, lis) }()

	if err := svc.Engine().Notify(t.Context(), firing("fp1")); err != nil {
		t.Fatal(err)
	}
	clk.Set(5 * time.Minute)
	svc.Engine().Tick(t.Context())
	calls := fake.Calls()
	if len(calls) != 1 || calls[0].To != alice {
		t.Fatalf("calls %+v", calls)
	}
	resp, err := fake.Press(t.Context(), calls[0], "1")
	if err != nil || resp.Status != http.StatusOK || !strings.Contains(resp.Body, "Acknowledged") {
		t.Fatalf("press: %+v %v", resp, err)
	}
	waitStopped(t, svc.Engine(), "fp1")
	// A forged request is refused by the running endpoint too.
	if r, _ := fake.Post(t.Context(), "http://"+lis.Addr().String()+twilio.GatherPath, nil, "forged"); r.Status != http.StatusForbidden {
		t.Errorf("forged request answered %d", r.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := NewService(t.Context(), ServiceOptions{OnCall: exampleConfig(t), Twilio: twilio.Config{AccountSID: "AC1"}, JS: js}); err == nil {
		t.Error("NewService accepted a half Twilio configuration")
	}
}
