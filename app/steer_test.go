package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/steer"
	"github.com/mciv/mciv/steer/routes"
)

// TestUpRunsSteerController: a steer: section in `mciv up` starts the
// route controller, which writes routes to the bucket; an agent whose
// cgroup does not exist is reported and skipped, and the rest runs.
func TestUpRunsSteerController(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dir := t.TempDir()
	path := dir + "/mciv.yaml"
	body := fmt.Sprintf(`host: steer
data_dir: %s/data
nats: {listen: "127.0.0.1:0"}
metrics: {listen: ""}
collector: {enabled: false}
analyzer: {enabled: false}
notifier: {enabled: false}
steer:
  agent: true
  controller: true
  cgroup: /sys/fs/cgroup/unified/mciv-no-such-cgroup
  status_file: %s/steer.json
  interval: 100ms
  services: [{name: pay-ro, address: "127.77.9.1:5432", role: ro, clusters: [pay]}]
  clusters: {pay: {members: {pg0: "%s"}}}
`, dir, dir, l.Addr())
	if err := writeFile(path, body); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if !Enabled(cfg).Steer {
		t.Fatal("steer not enabled")
	}
	info, stop := runParts(t, cfg, prometheus.NewRegistry())
	defer stop()
	nc, err := nats.Connect(info.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if kv, err := js.KeyValue(ctx, steer.DefaultBucket); err == nil {
			if e, err := kv.Get(ctx, "pay-ro"); err == nil {
				var r routes.Route
				if err := json.Unmarshal(e.Value(), &r); err != nil || r.Member != "pg0" {
					t.Fatalf("route %s: %v", e.Value(), err)
				}
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("no route written")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
