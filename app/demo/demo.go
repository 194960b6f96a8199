// Package demo runs mciv end to end on this host with nothing set up: a
// private network namespace, a TCP workload in it, real packet loss turned on
// and off with nftables, and the alert firing and resolving.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mciv/mciv/app"
	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/lossnet"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
)

// Options configures the demo.
type Options struct {
	// Config is the base configuration; the demo runs its own embedded NATS
	// on a free port with a temporary data directory, so a running
	// `mciv up` is not disturbed. Slack settings are used when present.
	Config config.Config
	// Quiet is how long the workload runs before the loss starts.
	Quiet time.Duration
	// LossPercent of the workload's packets are dropped.
	LossPercent int
	// MaxWait bounds the wait for the alert to fire, and then to resolve.
	MaxWait time.Duration
	// Namespace names the network namespace (default "mciv-demo").
	Namespace string
	Out       io.Writer
	Logger    *slog.Logger
}

// Run runs the demo and cleans up its namespace and rules when it returns,
// also when ctx is cancelled (Ctrl-C).
func Run(ctx context.Context, opts Options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo needs root: it creates a network namespace and attaches eBPF programs (try: sudo mciv demo)")
	}
	if opts.Namespace == "" {
		opts.Namespace = "mciv-demo"
	}
	if opts.LossPercent <= 0 || opts.LossPercent > 100 {
		return fmt.Errorf("loss %d%%: must be within 1..100", opts.LossPercent)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	out := opts.Out
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%s  demo: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
	}

	dir, err := os.MkdirTemp("", "mciv-demo-")
	if err != nil {
		return fmt.Errorf("demo data dir: %w", err)
	}
	defer os.RemoveAll(dir)
	cfg := opts.Config
	cfg.DataDir = dir
	cfg.NATS = bus.Section{Listen: "127.0.0.1:0"}
	cfg.Metrics.Listen = ""

	lab, err := lossnet.New(ctx, opts.Namespace)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if err := lab.Close(); err != nil {
			logger.Warn("demo cleanup", "err", err)
		}
	}()

	console := &lineWatch{w: out, lines: make(chan string, 64)}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan app.Info, 1)
	appDone := make(chan error, 1)
	go func() {
		appDone <- app.Run(runCtx, app.Options{
			Config: cfg, Parts: app.All, Logger: logger, Console: console,
			Ready: func(i app.Info) { ready <- i },
		})
	}()
	var info app.Info
	select {
	case info = <-ready:
	case err := <-appDone:
		return fmt.Errorf("demo: mciv did not start: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { stop(); <-appDone }()
	if info.Collector == nil {
		return fmt.Errorf("demo: the collector is not running on this host; see `mciv doctor`")
	}
	select {
	case <-info.Collector.Started():
	case <-ctx.Done():
		return ctx.Err()
	}
	attached := 0
	for _, h := range info.Collector.Hooks() {
		if h.Attached {
			attached++
			say("probe %s attached (%s)", h.Name, h.Type)
		}
	}
	if attached == 0 {
		return fmt.Errorf("demo: no eBPF probe could attach on this host; see `mciv doctor`")
	}

	alerts, closeAlerts, err := watchAlerts(ctx, info.NATSURL)
	if err != nil {
		return err
	}
	defer closeAlerts()

	port, err := lab.StartWorkload(runCtx)
	if err != nil {
		return fmt.Errorf("demo: workload: %w", err)
	}
	say("TCP workload running in network namespace %s on 127.0.0.1:%d; %s without loss", opts.Namespace, port, opts.Quiet)
	if err := sleep(ctx, opts.Quiet); err != nil {
		return err
	}
	if err := lab.SetLoss(ctx, opts.LossPercent); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	lossStart := time.Now()
	say("dropping %d%% of packets to port %d with nftables: the kernel will retransmit", opts.LossPercent, port)
	a, err := waitAlert(ctx, alerts, wire.StateFiring, opts.MaxWait)
	if err != nil {
		return err
	}
	say("alert %s FIRING %.1fs after the loss started (value %.1f, threshold %g)", a.Rule, time.Since(lossStart).Seconds(), a.Value, a.Threshold)
	if err := lab.ClearLoss(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	clear := time.Now()
	say("loss removed; waiting for the alert to resolve")
	a, err = waitAlert(ctx, alerts, wire.StateResolved, opts.MaxWait)
	if err != nil {
		return err
	}
	// Let the notifier print the resolution before everything stops.
	console.waitFor(ctx, string(wire.StateResolved), 5*time.Second)
	say("alert %s RESOLVED %.1fs after the loss stopped; cleaning up", a.Rule, time.Since(clear).Seconds())
	return nil
}

// lineWatch passes the console notifier's output through and lets the demo
// wait until a line with a given word has been printed.
type lineWatch struct {
	w     io.Writer
	lines chan string
}

func (l *lineWatch) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	select {
	case l.lines <- string(p):
	default:
	}
	return n, err
}

// waitFor waits at most max for a line containing word (case-insensitive).
func (l *lineWatch) waitFor(ctx context.Context, word string, max time.Duration) {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		select {
		case line := <-l.lines:
			if strings.Contains(strings.ToLower(line), strings.ToLower(word)) {
				return
			}
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// watchAlerts follows alert state changes on the bus.
func watchAlerts(ctx context.Context, url string) (<-chan *wire.Alert, func(), error) {
	nc, err := bus.Connect(ctx, url, bus.ConnectOptions{Name: "mciv-demo"})
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan *wire.Alert, 64)
	sub, err := nc.Subscribe(wire.AlertsWildcard, func(m *nats.Msg) {
		var a wire.Alert
		if json.Unmarshal(m.Data, &a) == nil {
			select {
			case ch <- &a:
			default:
			}
		}
	})
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("demo: subscribe alerts: %w", err)
	}
	return ch, func() { _ = sub.Unsubscribe(); nc.Close() }, nil
}

func waitAlert(ctx context.Context, ch <-chan *wire.Alert, state wire.AlertState, max time.Duration) (*wire.Alert, error) {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		select {
		case a := <-ch:
			if a.State == state {
				return a, nil
			}
		case <-timer.C:
			return nil, fmt.Errorf("demo: no %s alert within %s", state, max)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
