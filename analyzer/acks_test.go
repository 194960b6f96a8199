package analyzer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/internal/bus"
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
	// The resolve is audited on MCIV_ACTIONS, as a resolve, not a failover.
	acts, subjects := storedActions(t, ctx, b.js)
	if len(acts) != 1 {
		t.Fatalf("actions %+v, want one resolve", acts)
	}
	act := acts[0]
	if subjects[0] != "mciv.actions.c.resolve" || act.Kind != wire.ActionKindResolve || act.Fingerprint != fp ||
		act.Cluster != "c" || act.Decision != "acted" || act.ID != "resolve-r1" || act.Evidence["by"] != "U123" ||
		act.Evidence["quiet_until"] != t0.Add(10200*time.Millisecond).Format(time.RFC3339) {
		t.Errorf("resolve audit record on %s: %+v", subjects[0], act)
	}
}

// storedActions returns every action in MCIV_ACTIONS with its subject.
func storedActions(t *testing.T, ctx context.Context, js jetstream.JetStream) (acts []*wire.Action, subjects []string) {
	return readStream(t, ctx, js, bus.ActionsStream, wire.DecodeAction)
}

// The quiet window after a Resolve is in the alert state bucket: an
// analyzer restarted within it does not fire the alert again before the
// window ends, and fires it after, as if nothing had restarted.
func TestResolveQuietWindowSurvivesRestart(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	set := mustRules(t, tcpRule) // for 3s, keep_firing_for 5s
	first, _ := newAnalyzer(t, b, set, clk)
	if _, err := first.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	seen := 0
	record := func(when string) {
		alerts, _ := stored(t, ctx, b.js)
		for _, al := range alerts[seen:] {
			got = append(got, fmt.Sprintf("%s:%s", when, al.State))
		}
		seen = len(alerts)
	}
	for seq := range 5 {
		send(ctx, first, clk, hostBatch("db-1", seq, retrans(10)))
		record(fmt.Sprint(seq))
	}
	alerts, _ := stored(t, ctx, b.js)
	if len(alerts) != 1 {
		t.Fatalf("alerts %+v, want one firing", alerts)
	}
	fp := alerts[0].Fingerprint
	if !first.HandleAck(ctx, &wire.Ack{Fingerprint: fp, Action: wire.AckResolve, By: "U123", Via: "slack", ID: "r1"}) {
		t.Fatal("Resolve did not end the firing alert")
	}
	if err := first.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	record("resolve")
	kv, err := b.js.KeyValue(ctx, StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, fp); err != nil {
		t.Fatalf("the quiet window is not in %s: %v", StateBucket, err)
	}

	// first stops; a second analyzer starts within the quiet window.
	second, _ := newAnalyzer(t, b, set, clk)
	if n, err := second.Restore(ctx); err != nil || n != 1 {
		t.Fatalf("restored %d %v, want the resolved alert's quiet window", n, err)
	}
	for seq := 5; seq < 20; seq++ { // the condition holds throughout
		send(ctx, second, clk, hostBatch("db-1", seq, retrans(10)))
		record(fmt.Sprint(seq))
	}
	// As without the restart (TestResolveEndsTheAlertForKeepFiringFor):
	// quiet until t0+10.2s, pending from the batch ending at t0+11s,
	// firing 3s later (seq 13).
	if want := []string{"3:firing", "resolve:resolved", "13:firing"}; !slices.Equal(got, want) {
		t.Fatalf("stream %v, want %v", got, want)
	}

	// A window that ended while no analyzer ran is dropped at the next start.
	third, _ := newAnalyzer(t, b, set, clk)
	st := mustState(t, ctx, kv, fp)
	st.Life.State, st.Life.SuppressUntil = lifecycle.Inactive, clk.Now().Add(-time.Second)
	putState(t, ctx, kv, fp, st)
	if n, err := third.Restore(ctx); err != nil || n != 0 {
		t.Fatalf("restored %d %v, want nothing (the window ended)", n, err)
	}
	if _, err := kv.Get(ctx, fp); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("an ended quiet window stays in the bucket: %v", err)
	}
}

func mustState(t *testing.T, ctx context.Context, kv jetstream.KeyValue, fp string) eval.GroupState {
	t.Helper()
	e, err := kv.Get(ctx, fp)
	if err != nil {
		t.Fatal(err)
	}
	var st eval.GroupState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func putState(t *testing.T, ctx context.Context, kv jetstream.KeyValue, fp string, st eval.GroupState) {
	t.Helper()
	data, err := json.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, fp, data); err != nil {
		t.Fatal(err)
	}
}
