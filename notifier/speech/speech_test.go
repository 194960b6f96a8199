package speech

import (
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/wire"
)

// alert returns a firing p99 query latency alert on db-1 in payments.
func alert(mod func(a *wire.Alert)) *wire.Alert {
	a := &wire.Alert{
		Rule:      "QueryLatencyAnomaly",
		State:     wire.StateFiring,
		Labels:    map[string]string{"severity": "critical", "host": "db-1", "cluster": "payments"},
		Signal:    "db_query_seconds",
		Stat:      "p99",
		Value:     0.85,
		Threshold: 0.5,
		Baseline:  0.14,
		Score:     0.93,
	}
	if mod != nil {
		mod(a)
	}
	return a
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    *wire.Alert
		want string
	}{
		{"latency", alert(nil),
			"Critical. 99th percentile query latency 850 milliseconds, 6.1 times its usual value, on host d b 1 in cluster payments."},
		{"round ratio", alert(func(a *wire.Alert) { a.Baseline = 0.1417 }),
			"Critical. 99th percentile query latency 850 milliseconds, 6 times its usual value, on host d b 1 in cluster payments."},
		{"resolved", alert(func(a *wire.Alert) { a.State = wire.StateResolved; a.Value = 0.12 }),
			"Resolved. 99th percentile query latency on host d b 1 in cluster payments is back to 120 milliseconds."},
		{"rate", alert(func(a *wire.Alert) {
			a.Signal, a.Stat, a.Value, a.Baseline = "tcp_retransmits_total", "rate", 12, 2
			a.Labels["host"] = "pg-primary-02"
		}), "Critical. TCP retransmits 12 per second, 6 times its usual value, on host p g primary 0 2 in cluster payments."},
		{"warning without baseline", alert(func(a *wire.Alert) {
			a.Labels["severity"] = "warning"
			a.Baseline = 0
			a.Value = 1.2
		}), "Warning. 99th percentile query latency 1.2 seconds, on host d b 1 in cluster payments."},
		{"below usual", alert(func(a *wire.Alert) {
			a.Signal, a.Stat, a.Value, a.Baseline = "db_queries_total", "rate", 25, 100
		}), "Critical. Database queries 25 per second, 25 percent of its usual value, on host d b 1 in cluster payments."},
		{"near usual", alert(func(a *wire.Alert) { a.Baseline = 0.8 }),
			"Critical. 99th percentile query latency 850 milliseconds, on host d b 1 in cluster payments."},
		{"no severity no labels", alert(func(a *wire.Alert) { a.Labels = nil }),
			"Alert. 99th percentile query latency 850 milliseconds, 6.1 times its usual value."},
		{"no signal uses rule", alert(func(a *wire.Alert) { a.Signal, a.Stat, a.Rule = "", "", "HostSilent" }),
			"Critical. Host silent on host d b 1 in cluster payments."},
		{"resolved without signal", alert(func(a *wire.Alert) { a.Signal, a.Stat, a.Rule, a.State = "", "", "HostSilent", wire.StateResolved }),
			"Resolved. Host silent on host d b 1 in cluster payments."},
		{"big number", alert(func(a *wire.Alert) {
			a.Signal, a.Stat, a.Value, a.Baseline = "queue_depth", "max", 123456, 0
		}), "Critical. Maximum queue depth 123000, on host d b 1 in cluster payments."},
		{"unknown severity word", alert(func(a *wire.Alert) { a.Labels["severity"] = "page_now" }),
			"Page now. 99th percentile query latency 850 milliseconds, 6.1 times its usual value, on host d b 1 in cluster payments."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.a)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if Text(tc.a) != got {
				t.Errorf("Text differs from Render")
			}
		})
	}
}

func TestTextNil(t *testing.T) {
	if s := Text(nil); s != "" {
		t.Errorf("Text(nil) = %q", s)
	}
}

func TestVoiceTemplate(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl, want string
		wantErr          string
	}{
		{"helpers",
			`{{.Spoken.Severity}}. Replication lag on {{spell .Labels.host}} is {{duration .Value}}, {{times .Value .Baseline}} normal.`,
			"Critical. Replication lag on d b 1 is 850 milliseconds, 6.1 times normal.", ""},
		{"spoken fields",
			`{{.Spoken.State}}: {{.Spoken.Stat}} {{.Spoken.Signal}} is {{.Spoken.Value}}, threshold {{.Spoken.Threshold}}, usually {{.Spoken.Baseline}}.`,
			"Critical: 99th percentile query latency is 850 milliseconds, threshold 500 milliseconds, usually 140 milliseconds.", ""},
		{"default plus runbook", "{{.Default}}\n  Restart pgbouncer first.",
			"Critical. 99th percentile query latency 850 milliseconds, 6.1 times its usual value, on host d b 1 in cluster payments. Restart pgbouncer first.", ""},
		{"numbers", `Score {{number .Score}}; {{rate 3}}; {{percent 0.5}}; {{stat "p95"}}; {{signal "tcp_resets_total"}}; {{quantity .Signal .Stat .Threshold}}; {{title (phrase .Rule)}}`,
			"Score 0.93; 3 per second; 50 percent; 95th percentile; TCP resets; 500 milliseconds; Query latency anomaly", ""},
		{"missing label is empty", `Host {{.Labels.nosuch}} down.`, "Host down.", ""},
		{"parse error falls back", `{{.Spoken.Severity`, "Critical. 99th percentile query latency 850 milliseconds, 6.1 times its usual value, on host d b 1 in cluster payments.", "parse"},
		{"exec error falls back", `{{duration .Labels.host}}`, "Critical. 99th percentile query latency 850 milliseconds, 6.1 times its usual value, on host d b 1 in cluster payments.", "execute"},
		{"empty output falls back", `{{if false}}x{{end}}`, "Critical. 99th percentile query latency 850 milliseconds, 6.1 times its usual value, on host d b 1 in cluster payments.", "renders nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := alert(func(a *wire.Alert) { a.Annotations = map[string]string{"voice": tc.tmpl} })
			got, err := Render(a)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Render: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "QueryLatencyAnomaly")) {
				t.Fatalf("Render error = %v, want one naming the rule and containing %q", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCheckTemplate(t *testing.T) {
	if err := CheckTemplate(`{{.Spoken.Severity}} on {{spell .Labels.host}}`); err != nil {
		t.Errorf("valid template: %v", err)
	}
	if err := CheckTemplate(`{{nosuchfunc 1}}`); err == nil {
		t.Error("unknown function accepted")
	}
	if err := CheckTemplate(`{{duration .Labels.host}}`); err == nil {
		t.Error("a template that cannot execute was accepted")
	}
}
