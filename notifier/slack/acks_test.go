package slack

import (
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

func TestAckAndActionText(t *testing.T) {
	for _, tc := range []struct {
		ack  wire.Ack
		want string
	}{
		{wire.Ack{Action: wire.AckAcknowledge, By: "U1", Via: "slack"}, "Acknowledged by <@U1>"},
		{wire.Ack{Action: wire.AckAcknowledge, By: "alice", Via: "phone"}, "Acknowledged by alice via phone"},
		{wire.Ack{Action: wire.AckSilence, By: "U1", Until: time.Unix(1700000000, 0)}, "Silenced by <@U1> until <!date^1700000000"},
		{wire.Ack{Action: wire.AckResolve, By: "U1"}, "Marked resolved by <@U1>"},
		{wire.Ack{Action: wire.AckApprove, By: "U1"}, "Failover approved by <@U1>"},
	} {
		if got := AckText(&tc.ack); !strings.Contains(got, tc.want) {
			t.Errorf("AckText(%+v) = %q, want %q", tc.ack, got, tc.want)
		}
	}
	got := ActionText(&wire.Action{Kind: "switchover", Decision: "pending_approval", From: "a", To: "b", Reason: "primary <down>"})
	if !strings.Contains(got, "Switchover pending approval: a → b — primary &lt;down&gt;") {
		t.Errorf("ActionText = %q", got)
	}
}
