package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/rules"
)

func TestStartFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	nc, err := bus.Connect(ctx, emb.URL(), bus.ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := config.Default()
	cfg.Failover = actuator.Config{
		Enabled: true,
		Rules:   map[string]actuator.Policy{"pg_latency": {When: actuator.WhenPrimary}},
		Clusters: map[string]actuator.PatroniCluster{
			"payments": {Endpoints: []string{"http://127.0.0.1:1"}},
		},
	}
	started := make(chan string, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	_, err = startFailover(ctx, cfg, nil, nc, ackTrust{}, nil, slog.New(slog.DiscardHandler), func(part string, fn func(context.Context) error) {
		started <- part
		go func() { done <- fn(runCtx) }()
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := <-started; p != "failover" {
		t.Fatalf("started %q", p)
	}
	js, _ := bus.JetStream(nc)
	if _, err := js.KeyValue(ctx, actuator.DefaultKVBucket+"_state"); err != nil {
		t.Fatalf("state bucket: %v", err)
	}
	stop()
	<-done
}

func TestFailoverPoliciesFromRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	if err := os.WriteFile(path, []byte(`groups:
  - name: pg
    rules:
      - alert: PrimarySick
        signal: db_query_seconds
        stat: p99
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 1}
        actions: [{failover: {approval: true}}]
      - alert: JustTellMe
        signal: db_query_seconds
        stat: p99
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 2}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := rules.LoadFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	got := failoverPolicies(set, map[string]actuator.Policy{"FromConfig": {When: actuator.WhenPrimary, DryRun: true}})
	want := map[string]actuator.Policy{
		"PrimarySick": {When: actuator.WhenPrimary, Approval: true},
		"FromConfig":  {When: actuator.WhenPrimary, DryRun: true},
	}
	if len(got) != len(want) {
		t.Fatalf("policies %+v, want %+v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %+v, want %+v", k, got[k], v)
		}
	}
}
