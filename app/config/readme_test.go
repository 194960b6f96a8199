package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEConfigExamplesLoad keeps the README's configuration examples
// true: every yaml block of its Configuration section must load.
func TestREADMEConfigExamplesLoad(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "## Configuration")
	end := strings.Index(text[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no Configuration section")
	}
	section := text[start : start+1+end]
	blocks := strings.Split(section, "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("no yaml examples in the Configuration section")
	}
	for i, b := range blocks {
		body := b[:strings.Index(b, "```")]
		env := func(k string) string {
			if k == "MCIV_TWILIO_AUTH_TOKEN" && strings.Contains(body, "twilio:") {
				return "test-token" // the example takes the secret from the environment
			}
			return ""
		}
		p := filepath.Join(t.TempDir(), "mciv.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p, env); err != nil {
			t.Errorf("README configuration example %d does not load: %v", i+1, err)
		}
	}
}
