package inhibit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
	"gopkg.in/yaml.v3"
)

func TestDefaultRule(t *testing.T) {
	r := DefaultRules[0]
	crit := map[string]string{"severity": "critical", "host": "db-1"}
	for _, tc := range []struct {
		target map[string]string
		want   bool
	}{
		{map[string]string{"severity": "warning", "host": "db-1"}, true},
		{map[string]string{"severity": "warning", "host": "db-2"}, false},
		{map[string]string{"severity": "critical", "host": "db-1"}, false},
	} {
		if got := r.Inhibits(crit, tc.target); got != tc.want {
			t.Errorf("Inhibits(%v) = %v, want %v", tc.target, got, tc.want)
		}
	}
}

func TestRuleYAMLErrors(t *testing.T) {
	var rules []Rule
	err := yaml.Unmarshal([]byte("- source_matchers: [severity=critical]\n  target_matchers: ['sev~x']\n"), &rules)
	if err == nil || !strings.HasPrefix(err.Error(), "2:21:") {
		t.Errorf("error = %v, want one at 2:21", err)
	}
	err = yaml.Unmarshal([]byte("- source_matchers: [a=b]\n  target_matchers: [c=d]\n  equals: [host]\n"), &rules)
	if err == nil || !strings.Contains(err.Error(), `3:3: inhibit rule: unknown field "equals"`) {
		t.Errorf("error = %v", err)
	}
}

func TestMuter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "inhibit-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := bus.JetStream(nc)
	log, err := nflog.Open(ctx, js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sil, err := silence.Open(ctx, js, 1, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	m := NewMuter(nil, sil, log)
	alert := func(fp, sev, host string, st wire.AlertState, at int) *wire.Alert {
		return &wire.Alert{Fingerprint: fp, Rule: "R" + sev, State: st, At: now.Add(time.Duration(at) * time.Second),
			Labels: map[string]string{"severity": sev, "host": host}}
	}
	mute := func(a *wire.Alert) string {
		t.Helper()
		r, err := m.Mute(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := mute(alert("w1", "warning", "db-1", wire.StateFiring, 0)); r != "" {
		t.Errorf("warning alone muted: %s", r)
	}
	if r := mute(alert("c1", "critical", "db-1", wire.StateFiring, 1)); r != "" {
		t.Errorf("critical muted: %s", r)
	}
	if r := mute(alert("w1", "warning", "db-1", wire.StateFiring, 2)); !strings.HasPrefix(r, "inhibited by") {
		t.Errorf("warning beside a critical on its host: %q, want inhibited", r)
	}
	if r := mute(alert("w2", "warning", "db-2", wire.StateFiring, 2)); r != "" {
		t.Errorf("warning on another host muted: %s", r)
	}
	if r := mute(alert("c1", "critical", "db-1", wire.StateResolved, 3)); r != "" {
		t.Errorf("resolved muted: %s", r)
	}
	if r := mute(alert("w1", "warning", "db-1", wire.StateFiring, 4)); r != "" {
		t.Errorf("warning after the critical resolved: %q", r)
	}
	if _, err := sil.Add(ctx, silence.Silence{Matchers: labels.Matchers{labels.MustParse("host=db-2")}, EndsAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if r := mute(alert("w2", "warning", "db-2", wire.StateFiring, 5)); !strings.HasPrefix(r, "silenced by") {
		t.Errorf("silenced host: %q", r)
	}
}
