package latbench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestSettingsRender(t *testing.T) {
	for _, s := range []PromSetting{Fastest(), Typical()} {
		t.Run(s.Name, func(t *testing.T) {
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			var prom struct {
				Global struct {
					Scrape  string `yaml:"scrape_interval"`
					Timeout string `yaml:"scrape_timeout"`
					Eval    string `yaml:"evaluation_interval"`
				}
				RuleFiles     []string `yaml:"rule_files"`
				ScrapeConfigs []struct {
					StaticConfigs []struct {
						Targets []string
					} `yaml:"static_configs"`
				} `yaml:"scrape_configs"`
			}
			if err := yaml.Unmarshal([]byte(s.PrometheusConfig("10.0.0.2:9100", "127.0.0.1:9093", "/x/rules.yml")), &prom); err != nil {
				t.Fatal(err)
			}
			if prom.Global.Scrape != promDuration(s.Scrape) || prom.Global.Eval != promDuration(s.Eval) {
				t.Errorf("global %+v for %s", prom.Global, s)
			}
			if d, _ := time.ParseDuration(prom.Global.Timeout); d > s.Scrape {
				t.Errorf("scrape_timeout %s above the scrape interval %s: Prometheus refuses it", prom.Global.Timeout, s.Scrape)
			}
			if len(prom.ScrapeConfigs) != 1 || prom.ScrapeConfigs[0].StaticConfigs[0].Targets[0] != "10.0.0.2:9100" {
				t.Errorf("scrape configs %+v", prom.ScrapeConfigs)
			}
			var rules struct {
				Groups []struct {
					Rules []struct {
						Alert, Expr, For string
					}
				}
			}
			if err := yaml.Unmarshal([]byte(s.RulesFile()), &rules); err != nil {
				t.Fatal(err)
			}
			r := rules.Groups[0].Rules[0]
			if !strings.Contains(r.Expr, "node_netstat_Tcp_RetransSegs["+promDuration(s.Window)+"]") || r.For != promDuration(s.For) {
				t.Errorf("rule %+v for %s", r, s)
			}
			var am struct {
				Route struct {
					GroupWait string `yaml:"group_wait"`
				}
				Receivers []struct {
					WebhookConfigs []struct{ URL string } `yaml:"webhook_configs"`
				}
			}
			if err := yaml.Unmarshal([]byte(s.AlertmanagerConfig("http://127.0.0.1:1/hook/x")), &am); err != nil {
				t.Fatal(err)
			}
			if am.Route.GroupWait != promDuration(s.GroupWait) || am.Receivers[0].WebhookConfigs[0].URL != "http://127.0.0.1:1/hook/x" {
				t.Errorf("alertmanager %+v", am)
			}
			checkWithTools(t, s)
		})
	}
}

// checkWithTools runs promtool and amtool on the files where Debian's
// prometheus and prometheus-alertmanager are installed (make bench-latency
// installs them; the test suite does not need them).
func checkWithTools(t *testing.T, s PromSetting) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rules := write("rules.yml", s.RulesFile())
	prom := write("prometheus.yml", s.PrometheusConfig("10.0.0.2:9100", "127.0.0.1:9093", rules))
	am := write("alertmanager.yml", s.AlertmanagerConfig("http://127.0.0.1:1/hook/x"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range [][]string{{"promtool", "check", "config", prom}, {"amtool", "check-config", am}} {
		if _, err := exec.LookPath(c[0]); err != nil {
			t.Logf("%s not installed (scripts/deps.sh bench): not checked with it", c[0])
			continue
		}
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
}

func TestSettingValidate(t *testing.T) {
	s := Fastest()
	s.Window = s.Scrape
	s.Name = "Bad Name"
	err := s.Validate()
	if err == nil || !strings.Contains(err.Error(), "window") || !strings.Contains(err.Error(), "name") {
		t.Fatalf("Validate() = %v, want errors about window and name", err)
	}
}

func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", time.Minute: "1m", 15 * time.Second: "15s", 90 * time.Second: "90s", 500 * time.Millisecond: "500ms"} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestSettingCycle(t *testing.T) {
	if got := Fastest().Cycle(); got != time.Second {
		t.Errorf("fastest cycle %s, want 1s", got)
	}
	if got := Typical().Cycle(); got != time.Minute {
		t.Errorf("typical cycle %s, want 1m (its group_interval)", got)
	}
}
