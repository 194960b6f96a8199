package analyzer

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

func TestResolveEndsTheAlertForKeepFiringFor(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	a, _ := newAnalyzer(t, b, mustRules(t, tcpRule), clk) // for 3s, keep_firing_for 5s
	var got []string
	seen := 0
	record := func(when string) {
		alerts, _ := stored(t, ctx, b.js)
		for _, al := range alerts[seen:] {
			got = append(got, fmt.Sprintf("%s:%s", when, al.State))
		}
		seen = len(alerts)
	}
	var fp string
	for seq := range 20 { // the condition holds throughout
		send(ctx, a, clk, hostBatch("db-1", seq, retrans(10)))
		record(fmt.Sprint(seq))
		if seq == 4 {
			alerts, _ := stored(t, ctx, b.js)
			fp = alerts[0].Fingerprint
			if a.HandleAck(ctx, &wire.Ack{Fingerprint: "unknown", Action: wire.AckResolve, By: "U123", Via: "slack"}) {
				t.Error("an unknown alert resolved")
			}
			if a.HandleAck(ctx, &wire.Ack{Fingerprint: fp, Action: wire.AckAcknowledge, By: "U123", Via: "slack"}) {
				t.Error("an acknowledgement resolved the alert")
			}
			if !a.HandleAck(ctx, &wire.Ack{Fingerprint: fp, Action: wire.AckResolve, By: "U123", Via: "slack", ID: "r1"}) {
				t.Fatal("Resolve did not end the firing alert")
			}
			record("resolve")
		}
	}
	// Fired at seq 3, resolved by hand after seq 4 (t0+5.2s); no firing
	// within keep_firing_for (until t0+10.2s), pending again from the
	// batch ending at t0+11s, firing 3s later (seq 13).
	if want := []string{"3:firing", "resolve:resolved", "13:firing"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("stream %v, want %v", got, want)
	}
	alerts, _ := stored(t, ctx, b.js)
	res := alerts[1]
	if res.Fingerprint != fp || res.Annotations[AnnotationResolvedBy] != "slack:U123" || !res.EndsAt.Equal(t0.Add(5200*time.Millisecond)) {
		t.Errorf("resolved alert %+v", res)
	}
	if again := alerts[2]; !again.StartsAt.After(res.EndsAt) {
		t.Errorf("the new firing starts at %s, before the resolution %s", again.StartsAt, res.EndsAt)
	}
}
