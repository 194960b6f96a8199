package latbench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mciv/mciv/app/config"
)

// TestMCIVConfigLoads checks that `mciv up` accepts the file the benchmark
// writes (unknown keys are errors there) and that it keeps the defaults
// that are measured: the built-in rules and the collector's timings.
func TestMCIVConfigLoads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mciv.yaml")
	text := MCIVConfig(filepath.Join(dir, "data"), "/run/netns/mciv-latbench", 4222, 9464,
		MCIVSlack{URL: "http://127.0.0.1:1/api/", Token: "xoxb-x", Channel: "#oncall"})
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatalf("mciv refuses the benchmark's configuration: %v\n%s", err, text)
	}
	def := config.Default()
	if cfg.Collector.NetNS != "/run/netns/mciv-latbench" || !cfg.Slack.Enabled() || cfg.Slack.APIURL != "http://127.0.0.1:1/api/" {
		t.Errorf("netns %q, slack %+v", cfg.Collector.NetNS, cfg.Slack)
	}
	cfg.Collector.NetNS = def.Collector.NetNS
	if cfg.Collector != def.Collector {
		t.Errorf("collector settings differ from the defaults: %+v, want %+v", cfg.Collector, def.Collector)
	}
	if len(cfg.Analyzer.Rules) != 0 {
		t.Errorf("rules %v: the benchmark measures the built-in defaults", cfg.Analyzer.Rules)
	}
	if cfg.Notifier.Durable != def.Notifier.Durable {
		t.Errorf("notifier settings differ from the defaults")
	}
}
