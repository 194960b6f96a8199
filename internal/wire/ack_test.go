package wire

import (
	"strings"
	"testing"
	"time"
)

func TestAckRoundTrip(t *testing.T) {
	in := &Ack{Fingerprint: "f", Cluster: "c", Action: AckSilence, By: "U1", Via: "slack", ID: "x1",
		Until: time.Unix(100, 0).UTC(), At: time.Unix(50, 0).UTC()}
	data, err := EncodeAck(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeAck(data)
	if err != nil || out.Action != AckSilence || !out.Until.Equal(in.Until) {
		t.Fatalf("got %+v %v", out, err)
	}
	for _, bad := range []string{`{}`, `{"v":1,"fingerprint":"f","id":"i","action":"nuke"}`, `{"v":1,"action":"resolve"}`} {
		if _, err := DecodeAck([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
	if AckSubject("pay") != "mciv.acks.pay" {
		t.Error(AckSubject("pay"))
	}
}

func TestActionRoundTrip(t *testing.T) {
	in := &Action{ID: "a1", Cluster: "pay", Kind: "switchover", Decision: "refused", Safeguard: "cooldown", Reason: "r"}
	data, err := EncodeAction(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"safeguard":"cooldown"`) {
		t.Fatalf("not readable JSON: %s", data)
	}
	out, err := DecodeAction(data)
	if err != nil || out.Safeguard != "cooldown" {
		t.Fatalf("got %+v %v", out, err)
	}
	if _, err := DecodeAction([]byte(`{"v":1}`)); err == nil {
		t.Error("empty action decoded")
	}
}
