package ear

import (
	"os/exec"
	"testing"

	"github.com/mciv/mciv/internal/lab/testenv"
)

// TestHearsWhatWasSaid speaks with espeak-ng and listens: the keyword said
// is heard, the one not said is not.
func TestHearsWhatWasSaid(t *testing.T) {
	testenv.RequireCommand(t, "espeak-ng")
	Require(t)
	clip, err := exec.CommandContext(t.Context(), "espeak-ng", "-v", "en-us", "--stdout", "Critical alert on host orders").Output()
	if err != nil {
		t.Fatal(err)
	}
	heard, raw := Hear(t, clip, ".wav", "critical", "orders", "weather")
	t.Logf("pocketsphinx heard %q", raw)
	if heard["critical"] == 0 || heard["orders"] == 0 || heard["weather"] != 0 {
		t.Errorf("heard %q, want critical and orders, not weather", raw)
	}
}
