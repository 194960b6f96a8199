// Package app wires mciv's components together: the embedded or external
// NATS, the collector, the analyzer, the notifier and the metrics endpoint.
// `mciv up` runs all of them; `mciv collector|analyzer|notifier` run one.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/config"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/console"
	slacknotify "github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/rules"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Parts says which components run in this process.
type Parts struct {
	Collector, Analyzer, Notifier bool
}

// All is every component: the all-in-one mode.
var All = Parts{Collector: true, Analyzer: true, Notifier: true}

// Options configures a run.
type Options struct {
	Config config.Config
	Parts  Parts
	Logger *slog.Logger
	// Console receives alerts as text lines; nil means no console output.
	Console io.Writer
	// Registry gets every component's metrics; nil makes a new one.
	Registry *prometheus.Registry
	// Ready, when set, is called once every part has started.
	Ready func(Info)
}

// Info describes a started run.
type Info struct {
	// NATSURL is the URL of the bus the parts use.
	NATSURL string
	// MetricsAddr is where /metrics is served ("" when disabled).
	MetricsAddr string
	// Collector is the running collector (nil when it does not run here).
	Collector *collector.Collector
}

// Run starts the configured parts and blocks until ctx ends, then shuts them
// down in order: producers first, the bus last. A part that cannot run on
// this host (the collector without root, say) is reported and skipped; the
// others run.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}

	url := cfg.NATS.URL
	if url == "" {
		emb, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: cfg.DataDir, Listen: cfg.NATS.Listen, ServerName: "mciv-" + cfg.Host}, logger)
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		url = emb.URL()
	}
	connect := func(part string) (*natsConn, error) {
		nc, err := bus.Connect(ctx, url, bus.ConnectOptions{
			Name:      "mciv-" + part + " " + cfg.Cluster + "/" + cfg.Host,
			CredsFile: cfg.NATS.Creds, NKeyFile: cfg.NATS.NKey, Logger: logger.With("part", part),
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		return &natsConn{nc}, nil
	}

	info := Info{NATSURL: url}
	var metricsSrv *http.Server
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics listen %s: %w", cfg.Metrics.Listen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = metricsSrv.Serve(ln) }()
		info.MetricsAddr = ln.Addr().String()
		logger.Info("serving metrics", "url", "http://"+info.MetricsAddr+"/metrics")
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := func(part string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("part stopped", "part", part, "err", err)
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", part, err))
				mu.Unlock()
				cancel()
			}
		}()
	}
	var conns []*natsConn
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()

	if opts.Parts.Notifier {
		nc, err := connect("notifier")
		if err != nil {
			return err
		}
		conns = append(conns, nc)
		js, err := bus.JetStream(nc.Conn)
		if err != nil {
			return err
		}
		if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
			return err
		}
		var integrations []notifier.Notifier
		if opts.Console != nil {
			integrations = append(integrations, console.New(opts.Console))
		}
		if cfg.Slack.Enabled() {
			sn, err := slacknotify.New(slacknotify.Config{Token: cfg.Slack.Token, Channel: cfg.Slack.Channel, APIURL: cfg.Slack.APIURL}, logger)
			if err != nil {
				return fmt.Errorf("notifier: %w", err)
			}
			integrations = append(integrations, sn)
			logger.Info("slack notifications on", "slack", cfg.Slack.String())
		}
		d := notifier.NewDispatcher(notifier.DispatcherConfig{Durable: cfg.Notifier.Durable}, integrations, reg, logger.With("part", "notifier"))
		start("notifier", func(ctx context.Context) error { return d.Run(ctx, js) })
	}

	if opts.Parts.Analyzer {
		set, err := loadRules(cfg.Analyzer.Rules)
		if err != nil {
			return fmt.Errorf("analyzer: %w", err)
		}
		nc, err := connect("analyzer")
		if err != nil {
			return err
		}
		conns = append(conns, nc)
		js, err := bus.JetStream(nc.Conn)
		if err != nil {
			return err
		}
		if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
			return err
		}
		a, err := analyzer.New(analyzer.Config{Rules: set}, js, reg, logger.With("part", "analyzer"))
		if err != nil {
			return fmt.Errorf("analyzer: %w", err)
		}
		start("analyzer", func(ctx context.Context) error { return a.Run(ctx, nc.Conn) })
	}

	if opts.Parts.Collector {
		// Problems are reported, not fatal: the collector attaches what the
		// kernel allows and still publishes a heartbeat when nothing attaches.
		for _, p := range collector.Preflight() {
			logger.Warn("collector: "+p.What, "fix", p.Fix)
		}
		nc, err := connect("collector")
		if err != nil {
			return err
		}
		conns = append(conns, nc)
		c, err := collector.New(collector.Config{
			Cluster: cfg.Cluster, Host: cfg.Host,
			Interval:             time.Duration(cfg.Collector.Interval),
			MaxEventsPerInterval: cfg.Collector.MaxEventsPerInterval,
		}, nc.Conn, reg, logger.With("part", "collector"))
		if err != nil {
			return fmt.Errorf("collector: %w", err)
		}
		info.Collector = c
		start("collector", c.Run)
	}

	if opts.Ready != nil {
		opts.Ready(info)
	}
	<-runCtx.Done()
	wg.Wait()
	if metricsSrv != nil {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = metricsSrv.Shutdown(sctx)
		scancel()
	}
	return errors.Join(errs...)
}

// loadRules loads rule files, or the built-in defaults when none are named.
func loadRules(paths []string) (*rules.Set, error) {
	if len(paths) == 0 {
		return rules.LoadDefault()
	}
	return rules.LoadFiles(paths...)
}
