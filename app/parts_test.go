package app

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// TestEnabledFalseRunsNothing: `enabled: false` in the config switches a
// part off in `mciv up`: no collector (so no hook attached), no analyzer
// and no notifier consumer; with the notifier on, its consumer exists.
func TestEnabledFalseRunsNothing(t *testing.T) {
	path := t.TempDir() + "/mciv.yaml"
	body := "host: parts\ncollector: {enabled: false}\nanalyzer: {enabled: false}\nnotifier: {enabled: false}\n"
	if err := writeFile(path, body); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if p := Enabled(cfg); p != (Parts{}) || strings.Join(p.Off(), ",") != "collector,analyzer,notifier" {
		t.Fatalf("Enabled = %+v, off %v", p, p.Off())
	}
	if p := Enabled(config.Default()); p != All || len(p.Off()) != 0 {
		t.Fatalf("defaults: Enabled = %+v", p)
	}

	for _, tc := range []struct {
		name         string
		notifierOn   bool
		wantConsumer bool
	}{{"all off", false, false}, {"notifier on", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.DataDir = t.TempDir()
			c.NATS.Listen = "127.0.0.1:0"
			c.Metrics.Listen = ""
			on := tc.notifierOn
			c.Notifier.Enabled = &on
			reg := prometheus.NewRegistry()
			info, stop := runParts(t, c, reg)
			defer stop()
			if info.Collector != nil {
				t.Error("a collector was built although collector.enabled is false")
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				for _, off := range []string{"mciv_collector_", "mciv_analyzer_"} {
					if strings.HasPrefix(mf.GetName(), off) {
						t.Errorf("metric %s registered by a part that is off", mf.GetName())
					}
				}
			}
			nc, err := bus.Connect(t.Context(), info.NATSURL, bus.ConnectOptions{Name: "parts-test"})
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := bus.JetStream(nc)
			if err != nil {
				t.Fatal(err)
			}
			// The dispatcher creates its consumers (one per integration,
			// <durable>-<integration>, or <durable> without any) as it
			// starts: wait for one when it should come, give it the same
			// time when it should not.
			deadline := time.Now().Add(5 * time.Second)
			for {
				err = jetstream.ErrConsumerNotFound
				if st, serr := js.Stream(t.Context(), bus.AlertsStream); serr != nil {
					err = serr
				} else {
					names := st.ConsumerNames(t.Context())
					for name := range names.Name() {
						if name == c.Notifier.Durable || strings.HasPrefix(name, c.Notifier.Durable+"-") {
							err = nil
						}
					}
				}
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			switch {
			case tc.wantConsumer && err != nil:
				t.Errorf("notifier on, but its consumer: %v", err)
			case !tc.wantConsumer && err == nil:
				t.Error("notifier off, but its consumer exists")
			case !tc.wantConsumer && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound):
				t.Errorf("consumer lookup: %v", err)
			}
		})
	}
}

// runParts runs app.Run with Enabled(cfg) until stop is called.
func runParts(t *testing.T, cfg config.Config, reg *prometheus.Registry) (Info, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Parts: Enabled(cfg), Registry: reg, Ready: func(i Info) { ready <- i }})
	}()
	select {
	case info := <-ready:
		return info, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("Run ended before it was ready: %v", err)
	}
	return Info{}, nil
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o600) }
