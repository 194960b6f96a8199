package main

import (
	"fmt"

	"github.com/mciv/mciv/app"
	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/collector"
	"github.com/spf13/cobra"
)

func addConfigFlag(cmd *cobra.Command, e *env) {
	cmd.Flags().StringVar(&e.configPath, "config", "", "YAML configuration file (default: built-in defaults)")
}

func upCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything on this host: embedded NATS, collector, analyzer, notifier",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(e.configPath, e.getenv)
			if err != nil {
				return err
			}
			warnSecretConfig(e, e.configPath)
			logger := e.logger()
			parts := app.Enabled(cfg)
			if off := parts.Off(); len(off) > 0 {
				logger.Info("parts switched off in the config", "off", off)
			}
			if parts.Collector {
				if err := collector.MountTracefs(); err != nil {
					logger.Warn("tracefs is not mounted and could not be mounted", "err", err, "fix", "mount -t tracefs tracefs /sys/kernel/tracing")
				}
			}
			return app.Run(cmd.Context(), app.Options{
				Config: cfg, Parts: parts, Logger: logger, Console: e.stdout,
				Ready: func(info app.Info) {
					logger.Info("mciv is up", "cluster", cfg.Cluster, "host", cfg.Host, "nats", info.NATSURL, "slack", cfg.Slack.Enabled())
				},
			})
		},
	}
	addConfigFlag(cmd, e)
	return cmd
}

// partCmd runs one part against an existing NATS (split mode).
func partCmd(e *env, part string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   part,
		Short: fmt.Sprintf("Run only the %s, connected to the NATS given by nats.url (or MCIV_NATS_URL)", part),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(e.configPath, e.getenv)
			if err != nil {
				return err
			}
			warnSecretConfig(e, e.configPath)
			if cfg.NATS.URL == "" {
				return fmt.Errorf("mciv %s needs nats.url in the config or MCIV_NATS_URL; `mciv up` runs everything with an embedded NATS", part)
			}
			var parts app.Parts
			var console = e.stdout
			switch part {
			case "collector":
				parts.Collector = true
				if err := collector.MountTracefs(); err != nil {
					e.logger().Warn("tracefs is not mounted", "err", err)
				}
			case "analyzer":
				parts.Analyzer = true
			case "notifier":
				parts.Notifier = true
			}
			return app.Run(cmd.Context(), app.Options{Config: cfg, Parts: parts, Logger: e.logger(), Console: console})
		},
	}
	addConfigFlag(cmd, e)
	return cmd
}
