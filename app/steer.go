package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/steer"
)

// startSteer starts the route controller and the steering agent as cfg
// asks. An agent that cannot attach (no root, no cgroup v2, a kernel
// without the hooks) is reported and skipped: no steering, the rest runs.
func startSteer(cfg steer.Config, nc *nats.Conn, reg prometheus.Registerer, logger *slog.Logger,
	start func(string, func(context.Context) error)) {
	cfg.SetDefaults()
	log := logger.With("part", "steer")
	js, err := bus.JetStream(nc)
	if err != nil {
		log.Error("steer: no JetStream; steering off", "err", err)
		return
	}
	if cfg.Controller {
		ctl, err := steer.NewController(cfg, logger)
		if err != nil {
			log.Error("steer controller not started", "err", err)
		} else {
			start("steer-controller", func(ctx context.Context) error { return ctl.Run(ctx, nc, js) })
		}
	}
	if !cfg.Agent {
		return
	}
	dp, err := steer.OpenDatapath(cfg.Cgroup, cfg.Pins())
	if err != nil {
		log.Warn("no steering on this host: connects go where the application dials", "err", err,
			"fix", "run as root on a kernel with cgroup v2 and cgroup/connect4 (`mciv doctor` checks)")
		return
	}
	if r := dp.Replaced(); r != "" {
		log.Warn("the pinned steering maps had another layout (an older mciv): replaced; routes come back from the bucket", "err", r)
	}
	for _, h := range dp.Hooks() {
		switch {
		case !h.Attached:
			log.Warn("steer hook not attached", "hook", h.Name, "err", h.Error)
		case h.Adopted:
			log.Info("steer hook adopted from its pin (not attached twice)", "hook", h.Name, "pin_dir", dp.PinDir())
		case h.Error != "":
			log.Warn("steer hook attached but not pinned: steering stops with this process", "hook", h.Name, "err", h.Error)
		}
	}
	agent, err := steer.NewAgent(cfg, dp, reg, logger)
	if err != nil {
		_ = dp.Close()
		log.Error("steer agent not started", "err", fmt.Errorf("steer: %w", err))
		return
	}
	start("steer-agent", func(ctx context.Context) error {
		// Pinned, the programs and routes stay after Close: connects stay
		// steered by the last routes until the next agent or `mciv steer detach`.
		defer dp.Close()
		return agent.Run(ctx, nc, js)
	})
}
