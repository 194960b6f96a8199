package slack

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	slackgo "github.com/slack-go/slack"
)

func TestRenderGroupShowsValueAgainstBaselineAndOthers(t *testing.T) {
	a := testAlert()
	a.Baseline = 1.5
	b := alertOf("fpB", wire.StateResolved, a.At.Add(time.Minute), 2)
	e := &nflog.Entry{GroupKey: "default.k", Alerts: map[string]*wire.Alert{a.Fingerprint: a, b.Fingerprint: b}, AckedBy: "U42"}
	text, blocks := RenderGroup(e)
	if !strings.Contains(text, "+1 more in this group, 1 firing") {
		t.Errorf("text %q", text)
	}
	m := renderedText(t, blocks)
	for _, want := range []string{"12.3 vs baseline 1.5 (threshold 5)", "Also in this group", "RESOLVED TCPRetransmitRateHigh on db-1: 2", "Acknowledged by <@U42>", "Silence 4h", "Resolve"} {
		if !strings.Contains(m, want) {
			t.Errorf("group message lacks %q:\n%s", want, m)
		}
	}
	if strings.Contains(m, "\nAcknowledge\n") {
		t.Errorf("an acknowledged group still offers Acknowledge:\n%s", m)
	}
}

func TestRenderChange(t *testing.T) {
	a := testAlert()
	a.Baseline = 2
	got := RenderChange(a)
	for _, want := range []string{"*FIRING*", "TCPRetransmitRateHigh on db-1", "value 12.3", "baseline 2", "<!date^"} {
		if !strings.Contains(got, want) {
			t.Errorf("RenderChange = %q, lacks %q", got, want)
		}
	}
}

// renderedText is what a reader sees in blocks, as slacktest extracts it.
func renderedText(t *testing.T, blocks []slackgo.Block) string {
	t.Helper()
	b, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	return slacktest.Message{Blocks: b}.BlockText()
}
