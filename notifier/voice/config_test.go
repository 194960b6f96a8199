package voice

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mciv/mciv/notifier/tts"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	if !c.On() {
		t.Error("voice is on unless disabled")
	}
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if n, err := c.EngineNames(getenv); err != nil || !slices.Equal(n, []string{"espeak"}) {
		t.Errorf("engines without Google credentials = %v, %v", n, err)
	}
	env["GOOGLE_APPLICATION_CREDENTIALS"] = "/k.json"
	if n, _ := c.EngineNames(getenv); !slices.Equal(n, []string{"google", "espeak"}) {
		t.Errorf("engines with GOOGLE_APPLICATION_CREDENTIALS = %v", n)
	}
	c.Engines = "espeak"
	if n, _ := c.EngineNames(getenv); !slices.Equal(n, []string{"espeak"}) {
		t.Errorf("configured engines = %v", n)
	}
	if f, _ := (Config{}).ClipFormat(); f != tts.FormatOggOpus {
		t.Errorf("default format %v", f)
	}
	if s := (Config{}).SeverityList(); !slices.Equal(s, []string{"critical"}) {
		t.Errorf("default severities %v", s)
	}
	if d := (Config{}).ClipDir("/data"); d != filepath.Join("/data", "voice", "clips") {
		t.Errorf("clip dir %s", d)
	}
	if d := (Config{}).EnginesConfig("/data").CacheDir; d != "/data/voice/cache" {
		t.Errorf("cache dir %s", d)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Engines: "google,espeak", Format: "mp3"}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := Config{Engines: "polly", Format: "flac", Rate: -1}.Validate()
	for _, want := range []string{"voice.engines", "voice.format", "voice.rate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %s", err, want)
		}
	}
}
