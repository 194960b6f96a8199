package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/mciv/mciv/collector"
	"github.com/spf13/cobra"
)

// doctorReport is the JSON shape of `mciv doctor --json`.
type doctorReport struct {
	Hooks    []collector.HookStatus `json:"hooks"`
	Problems []collector.Problem    `json:"problems"`
}

func doctorCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check what this host's kernel lets the collector attach, and what to fix",
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = collector.MountTracefs()
			hooks, problems, err := collector.Doctor(cmd.Context())
			if err != nil {
				return err
			}
			if hooks == nil {
				hooks = []collector.HookStatus{}
			}
			if problems == nil {
				problems = []collector.Problem{}
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(doctorReport{Hooks: hooks, Problems: problems})
			}
			for _, p := range problems {
				fmt.Fprintf(e.stdout, "problem: %s\n  fix: %s\n", p.What, p.Fix)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOOK\tTYPE\tATTACHED\tERROR")
			for _, h := range hooks {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", h.Name, h.Type, h.Attached, h.Error)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON report")
	return cmd
}
