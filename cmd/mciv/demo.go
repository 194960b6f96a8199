package main

import (
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/app/demo"
	"github.com/spf13/cobra"
)

func demoCmd(e *env) *cobra.Command {
	var opts demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show mciv working (root): real TCP retransmits in a private network namespace fire an alert, then resolve",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(e.configPath, e.getenv)
			if err != nil {
				return err
			}
			opts.Config = cfg
			opts.Out = e.stdout
			opts.Logger = e.logger()
			return demo.Run(cmd.Context(), opts)
		},
	}
	addConfigFlag(cmd, e)
	cmd.Flags().DurationVar(&opts.Quiet, "quiet", 10*time.Second, "how long the workload runs without loss first")
	cmd.Flags().IntVar(&opts.LossPercent, "loss", 20, "percent of the workload's packets dropped")
	cmd.Flags().DurationVar(&opts.MaxWait, "max-wait", 90*time.Second, "give up if the alert has not fired or resolved by then")
	return cmd
}
