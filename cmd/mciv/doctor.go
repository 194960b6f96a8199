package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/steer"
	"github.com/spf13/cobra"
)

// doctorReport is the JSON shape of `mciv doctor --json`.
type doctorReport struct {
	Hooks    []collector.HookStatus `json:"hooks"`
	Problems []collector.Problem    `json:"problems"`
	Steer    steer.Report           `json:"steer"`
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
			sr := steer.Doctor(steer.DefaultStatusFile)
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(doctorReport{Hooks: hooks, Problems: problems, Steer: sr})
			}
			for _, p := range problems {
				fmt.Fprintf(e.stdout, "problem: %s\n  fix: %s\n", p.What, p.Fix)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOOK\tTYPE\tATTACHED\tERROR/NOTE")
			for _, h := range hooks {
				msg := h.Error
				if msg == "" {
					msg = h.Note
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", h.Name, h.Type, h.Attached, msg)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return printSteerDoctor(e.stdout, sr)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON report")
	return cmd
}

// printSteerDoctor prints the steering part of `mciv doctor`.
func printSteerDoctor(w io.Writer, r steer.Report) error {
	fmt.Fprintf(w, "\nsteering (cgroup v2: %s)\n", orNone(r.CgroupV2))
	if r.Problem != "" {
		fmt.Fprintf(w, "problem: %s\n  fix: %s\n", r.Problem, r.Fix)
	}
	if r.Warning != "" {
		fmt.Fprintf(w, "warning: %s\n", r.Warning)
	}
	for _, h := range r.Hooks {
		fmt.Fprintf(w, "  %-22s attached=%v %s\n", h.Name, h.Attached, h.Error)
	}
	if r.Agent == nil {
		fmt.Fprintln(w, "  no steering agent running on this host")
		return nil
	}
	return printSteerStatus(w, *r.Agent)
}

func orNone(s string) string {
	if s == "" {
		return "not mounted"
	}
	return s
}
