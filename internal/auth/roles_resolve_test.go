package auth

import (
	"slices"
	"testing"
)

// The analyzer audits resolves on MCIV_ACTIONS and may publish nothing
// else there: no failover decision in its name.
func TestAnalyzerPublishesOnlyResolveActions(t *testing.T) {
	pub := Permissions(Analyzer).Pub.Allow
	if !slices.Contains(pub, "mciv.actions.*.resolve") {
		t.Errorf("analyzer may not publish resolves: %v", pub)
	}
	for _, s := range pub {
		if s == "mciv.actions.>" || s == "mciv.actions.*" || s == ">" {
			t.Errorf("analyzer may publish %s (failover decisions)", s)
		}
	}
}

// The notifier may delete exactly the old shared consumer of the alerts
// (retired once its per-integration consumers took over), no other.
func TestNotifierDeletesOnlyTheOldSharedConsumer(t *testing.T) {
	var deletes []string
	for _, s := range Permissions(Notifier).Pub.Allow {
		if len(s) > len("$JS.API.CONSUMER.DELETE.") && s[:len("$JS.API.CONSUMER.DELETE.")] == "$JS.API.CONSUMER.DELETE." &&
			s[len("$JS.API.CONSUMER.DELETE."):][:len(AlertsStream)] == AlertsStream {
			deletes = append(deletes, s)
		}
	}
	if want := []string{"$JS.API.CONSUMER.DELETE.MCIV_ALERTS.mciv-notifier"}; !slices.Equal(deletes, want) {
		t.Errorf("notifier may delete %q on the alerts stream, want %q", deletes, want)
	}
}
