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
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/httpserver"
	"github.com/mciv/mciv/rules"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Parts says which components run in this process.
type Parts struct {
	Collector, Analyzer, Notifier bool
	// Steer runs the steering agent and/or controller (steer.agent,
	// steer.controller); only when configured.
	Steer bool
}

// All is every component: the all-in-one mode.
var All = Parts{Collector: true, Analyzer: true, Notifier: true}

// Enabled is the parts of the all-in-one mode that cfg leaves on
// (collector.enabled, analyzer.enabled, notifier.enabled).
func Enabled(cfg config.Config) Parts {
	return Parts{Collector: cfg.Collector.On(), Analyzer: cfg.Analyzer.On(), Notifier: cfg.Notifier.On(), Steer: cfg.Steer.Enabled()}
}

// Off names the parts that do not run, for a log line.
func (p Parts) Off() []string {
	var off []string
	for _, part := range []struct {
		name string
		on   bool
	}{{"collector", p.Collector}, {"analyzer", p.Analyzer}, {"notifier", p.Notifier}} {
		if !part.on {
			off = append(off, part.name)
		}
	}
	return off
}

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

	sec, err := newSecurity(cfg, logger)
	if err != nil {
		return err
	}
	// Metrics and health first: /readyz answers 503 (naming what it waits
	// for) while NATS and the parts start.
	hl := newHealth()
	var info Info
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics listen %s: %w", cfg.Metrics.Listen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		hl.Register(mux)
		metricsSrv := httpserver.New(mux, httpserver.Limits{})
		go func() { _ = metricsSrv.Serve(ln) }()
		defer func() {
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = metricsSrv.Shutdown(sctx)
			scancel()
		}()
		info.MetricsAddr = ln.Addr().String()
		logger.Info("serving metrics", "url", "http://"+info.MetricsAddr+"/metrics",
			"health", "/healthz /livez /readyz")
	}

	url := cfg.NATS.URL
	if url == "" {
		hl.starting("starting the embedded NATS server")
		es, err := sec.embedded()
		if err != nil {
			return err
		}
		emb, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: cfg.DataDir, Listen: cfg.NATS.Listen, ServerName: "mciv-" + cfg.Host, EmbeddedSecure: es}, logger)
		if err != nil {
			return err
		}
		defer emb.Shutdown()
		url = emb.URL()
		if err := sec.provision(ctx, url, logger); err != nil {
			return err
		}
	}
	connect := func(part string) (*natsConn, error) {
		hl.starting(part + ": connecting to NATS")
		co, err := sec.connectOptions(part)
		if err != nil {
			return nil, err
		}
		co.Name, co.Logger = "mciv-"+part+" "+cfg.Cluster+"/"+cfg.Host, logger.With("part", part)
		acks, err := sec.ackTrust(co)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		nc, err := bus.Connect(ctx, url, co)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		hl.natsConn(part, nc)
		hl.starting(part + ": setting up streams and consumers")
		return &natsConn{Conn: nc, acks: acks}, nil
	}

	info.NATSURL = url
	if opts.Parts.Notifier || opts.Parts.Analyzer {
		sec.warnUnverified(logger)
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
		if err := sec.ensureStreams(ctx, js, logger, bus.Replicas(cfg.NATS.Replicas, nc.Conn), bus.AlertsStream, bus.AcksStream, bus.ActionsStream); err != nil {
			return err
		}
		np, err := startNotifier(ctx, cfg, opts.Console, nc.Conn, js, nc.acks, reg, logger, start)
		if err != nil {
			return err
		}
		hl.notifier(np.Dispatcher)
	}

	var ruleSet *rules.Set // the analyzer's rules, for the failover actions they ask for
	var failoverActuator atomic.Pointer[actuator.Actuator]
	if opts.Parts.Analyzer {
		acfg := cfg.Analyzer.Limits.Apply(analyzer.Config{RulePaths: cfg.Analyzer.Rules})
		if len(cfg.Analyzer.Rules) == 0 { // the built-in defaults: nothing to reload
			set, err := rules.LoadDefault()
			if err != nil {
				return fmt.Errorf("analyzer: %w", err)
			}
			acfg.Rules = set
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
		if err := sec.ensureStreams(ctx, js, logger, bus.Replicas(cfg.NATS.Replicas, nc.Conn), bus.AlertsStream); err != nil {
			return err
		}
		// A reload that changes which rules ask for failover reaches the
		// actuator (started below, once the first rules are known).
		acfg.OnReload = func(set *rules.Set) {
			if act := failoverActuator.Load(); act != nil {
				act.SetRules(failoverPolicies(set, cfg.Failover.Rules))
			}
		}
		acfg.Fleet = fleetConfig(cfg, nc.Conn)
		// A Resolve ends an alert only when the notifier (a Slack or phone
		// press) or an operator in its own name made it.
		acfg.AckChecker = nc.acks.checker(true, false)
		if cfg.DataDir != "" {
			// Changes decided but not yet stored in JetStream survive a
			// crash in a journal there.
			acfg.OutboxDir = filepath.Join(cfg.DataDir, "analyzer")
		} else {
			logger.Warn("analyzer: no data_dir: alert changes waiting for JetStream are held in memory only and lost if mciv is killed")
		}
		a, err := analyzer.New(acfg, js, reg, logger.With("part", "analyzer"))
		if err != nil {
			return fmt.Errorf("analyzer: %w", err)
		}
		ruleSet = a.Rules()
		hl.analyzer(a)
		start("analyzer", func(ctx context.Context) error { return a.Run(ctx, nc.Conn) })
		// How full each stream and bucket is (mciv_jetstream_stream_usage_ratio,
		// a warning above 80%).
		if uw, err := bus.NewUsageWatcher(js, reg, logger.With("part", "jetstream-usage")); err == nil {
			if cfg.NATS.Auth != "" {
				// The analyzer's role may not list every stream: it
				// watches those it owns.
				uw.Only(bus.AlertsStream, "KV_"+analyzer.StateBucket, bus.InputStream, "KV_"+analyzer.CheckpointBucket)
			}
			start("jetstream-usage", func(ctx context.Context) error { return uw.Run(ctx, 30*time.Second) })
		}
		// Always caught, so that a SIGHUP never kills mciv; with the
		// built-in rules there is nothing to reload and it says so.
		start("analyzer-reload", func(ctx context.Context) error { return reloadOnSIGHUP(ctx, a, logger) })
	}

	// Guarded failover: runs beside the analyzer when configured.
	if opts.Parts.Analyzer && cfg.Failover.Enabled {
		nc, err := connect("failover")
		if err != nil {
			return err
		}
		conns = append(conns, nc)
		act, err := startFailover(ctx, cfg, ruleSet, nc.Conn, nc.acks, reg, logger, start)
		if err != nil {
			return err
		}
		failoverActuator.Store(act)
		hl.failover(act)
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
		pub, err := collectorPublisher(ctx, cfg, nc.Conn, reg, logger.With("part", "collector"), start)
		if err != nil {
			return err
		}
		c, err := collector.New(cfg.Collector.Config(cfg.Cluster, cfg.Host), pub, reg, logger.With("part", "collector"))
		if err != nil {
			return fmt.Errorf("collector: %w", err)
		}
		info.Collector = c
		start("collector", c.Run)
	}

	if opts.Parts.Steer && cfg.Steer.Enabled() {
		nc, err := connect("steer")
		if err != nil {
			return err
		}
		conns = append(conns, nc)
		startSteer(cfg.Steer, nc.Conn, reg, logger, start)
	}

	hl.started()
	if opts.Ready != nil {
		opts.Ready(info)
	}
	<-runCtx.Done()
	hl.starting("stopping")
	wg.Wait()
	return errors.Join(errs...)
}

// reloadOnSIGHUP reloads the analyzer's rules files on every SIGHUP until
// ctx ends. A rejected reload is logged by the analyzer and keeps the last
// good rules.
func reloadOnSIGHUP(ctx context.Context, a *analyzer.Analyzer, logger *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloadOn(ctx, hup, a, logger, nil)
	return nil
}

// reloadOn reloads the analyzer's rules for every value received on sig
// until ctx ends; done, when set, gets each reload's result.
func reloadOn(ctx context.Context, sig <-chan os.Signal, a *analyzer.Analyzer, logger *slog.Logger, done func(string)) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-sig:
			res, err := a.Reload() // a rejected reload is logged and exported by the analyzer
			if res == analyzer.ReloadUnchanged && err != nil {
				logger.Info("rules reload on signal: nothing to do", "signal", s, "reason", err)
			} else {
				logger.Info("rules reload on signal", "signal", s, "result", res)
			}
			if done != nil {
				done(res)
			}
		}
	}
}
