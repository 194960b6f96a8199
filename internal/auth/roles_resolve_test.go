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
