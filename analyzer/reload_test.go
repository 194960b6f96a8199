package analyzer

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/rules"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const diskRule = `
      - alert: DiskSlow
        signal: disk_io_seconds
        stat: p99
        by: [cluster, host, device]
        detector: {type: threshold, op: ">", value: 0.1}
`

func TestReloadKeepsStateOfUnchangedRules(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	clk := &clock{}
	dir := t.TempDir()
	file := filepath.Join(dir, "r.yaml")
	writeRules := func(src string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeRules(tcpRule)
	reg := prometheus.NewRegistry()
	a, err := New(Config{RulePaths: []string{dir}, Now: clk.Now}, b.js, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(a.m.rulesLoaded); got != 1 {
		t.Fatalf("rules_loaded %v", got)
	}
	for seq := range 5 { // fires at seq 3
		send(ctx, a, clk, hostBatch("db-1", seq, retrans(10)))
	}
	if alerts, _ := stored(t, ctx, b.js); len(alerts) != 1 {
		t.Fatalf("stored %d alerts", len(alerts))
	}

	if res, err := a.ReloadIfChanged(); res != ReloadUnchanged || err != nil {
		t.Fatalf("unchanged files: %s %v", res, err)
	}

	// A valid change: one rule added, the firing one unchanged.
	writeRules(tcpRule + diskRule)
	if res, err := a.ReloadIfChanged(); res != ReloadApplied || err != nil {
		t.Fatalf("valid change: %s %v", res, err)
	}
	if a.Rules().NumRules() != 2 || testutil.ToFloat64(a.m.rulesLoaded) != 2 || testutil.ToFloat64(a.m.reloadOK) != 1 {
		t.Fatalf("after reload: %d rules", a.Rules().NumRules())
	}
	if f := testutil.ToFloat64(a.m.activeGauges[0][1]); f != 1 {
		t.Fatalf("firing gauge after reload %v: state lost", f)
	}
	// Still firing: no second firing; quiet for 5s: resolved.
	for seq := 5; seq < 14; seq++ {
		var v float64
		if seq < 7 {
			v = 10
		}
		send(ctx, a, clk, hostBatch("db-1", seq, retrans(v)))
	}
	alerts, _ := stored(t, ctx, b.js)
	if len(alerts) != 2 || alerts[0].State != "firing" || alerts[1].State != "resolved" {
		t.Fatalf("stream after reload: %v", alerts)
	}

	// An invalid change is rejected: the last good rules stay.
	writeRules(strings.Replace(tcpRule+diskRule, "stat: p99", "stat: p95", 1))
	res, err := a.ReloadIfChanged()
	if res != ReloadRejected || err == nil || !strings.Contains(err.Error(), `r.yaml:17:15: group "network", rule "DiskSlow": unknown stat "p95"`) {
		t.Fatalf("invalid change: %s %v", res, err)
	}
	if a.Rules().NumRules() != 2 || testutil.ToFloat64(a.m.reloadOK) != 0 {
		t.Fatal("invalid rules applied")
	}
	if res, _ := a.ReloadIfChanged(); res != ReloadUnchanged {
		t.Fatalf("rejected version retried: %s", res)
	}
	if got := testutil.ToFloat64(a.m.reloads.WithLabelValues(ReloadRejected)); got != 1 {
		t.Fatalf("rejected count %v", got)
	}

	// Fixed, with the retransmit rule changed: its state starts afresh
	// and the removed rule's metrics go.
	writeRules(strings.Replace(tcpRule, "value: 5", "value: 50", 1))
	if res, err := a.Reload(); res != ReloadApplied || err != nil {
		t.Fatalf("fixed: %s %v", res, err)
	}
	if testutil.ToFloat64(a.m.reloadOK) != 1 || a.Rules().NumRules() != 1 {
		t.Fatal("fix not applied")
	}
	if n, err := testutil.GatherAndCount(reg, "mciv_analyzer_active_alerts"); err != nil || n != 2 {
		t.Fatalf("active_alerts series %d %v", n, err)
	}
}

func TestReloadWithoutFiles(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	a, _ := newAnalyzer(t, b, mustRules(t, tcpRule), &clock{})
	if _, err := a.Reload(); err == nil {
		t.Fatal("reload of built-in rules succeeded")
	}
}

// TestReloadTellsOnReload: OnReload sees every applied reload, with the
// new rules, and never a rejected one.
func TestReloadTellsOnReload(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	dir, file := writeRuleFile(t, tcpRule)
	var got []int
	a, err := New(Config{RulePaths: []string{dir}, ReloadInterval: -1, OnReload: func(s *rules.Set) { got = append(got, s.NumRules()) }}, b.js, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(tcpRule+diskRule), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Reload(); res != ReloadApplied || err != nil {
		t.Fatalf("reload: %s %v", res, err)
	}
	if err := os.WriteFile(file, []byte("groups: [oops"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, _ := a.Reload(); res != ReloadRejected {
		t.Fatalf("bad file: %s", res)
	}
	if len(got) != 1 || got[0] != 2 {
		t.Errorf("OnReload saw %v, want one reload with 2 rules", got)
	}
}

// TestRulesAdviceLogged: a rule that runs but probably does not do what
// it means (rules.Set.Advice) is logged as a warning when the rules load
// and when they reload, and the rules still apply.
func TestRulesAdviceLogged(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, true)
	dir, file := writeRuleFile(t, tcpRule)
	var logs testenv.LockedBuffer
	a, err := New(Config{RulePaths: []string{dir}}, b.js, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := "rule TCPRetransmitRateHigh: for: 3s on the rate of tcp_retransmits_total"
	if n := strings.Count(logs.String(), want); n != 1 || a.Rules().NumRules() != 1 {
		t.Fatalf("%d warnings at load, %d rules:\n%s", n, a.Rules().NumRules(), logs.String())
	}
	if res, err := a.Reload(); res != ReloadApplied || err != nil {
		t.Fatalf("reload: %s %v", res, err)
	}
	if n := strings.Count(logs.String(), want); n != 2 {
		t.Fatalf("%d warnings after a reload:\n%s", n, logs.String())
	}
	// Held with evidence, the rule gets no advice.
	if err := os.WriteFile(file, []byte(strings.Replace(tcpRule, "for: 3s", "evidence: {need: 1s, min: 750ms}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := a.Reload(); res != ReloadApplied || err != nil {
		t.Fatalf("reload: %s %v", res, err)
	}
	if n := strings.Count(logs.String(), "probably does not do what it means"); n != 2 {
		t.Fatalf("%d warnings in all:\n%s", n, logs.String())
	}
}

// writeRuleFile writes src as the one rules file of a new directory.
func writeRuleFile(t *testing.T, src string) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file
}
