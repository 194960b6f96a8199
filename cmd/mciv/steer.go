package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mciv/mciv/app"
	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/steer"
)

// steerCmd is `mciv steer` (the steering agent of an application host, and
// the route controller when configured) and `mciv steer status`.
func steerCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "steer",
		Short: "Steer this host's application to its database services (steer: section), connected to nats.url",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(e.configPath, e.getenv)
			if err != nil {
				return err
			}
			if !cfg.Steer.Enabled() {
				return fmt.Errorf("mciv steer: the config has no steer: section with agent: true or controller: true")
			}
			if cfg.NATS.URL == "" {
				return fmt.Errorf("mciv steer needs nats.url in the config or MCIV_NATS_URL; `mciv up` runs it with an embedded NATS")
			}
			return app.Run(cmd.Context(), app.Options{Config: cfg, Parts: app.Parts{Steer: true}, Logger: e.logger()})
		},
	}
	addConfigFlag(cmd, e)
	cmd.AddCommand(steerStatusCmd(e))
	return cmd
}

func steerStatusCmd(e *env) *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the services this host steers, their routes, connect counts and the attach state",
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := steer.ReadStatus(path)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printSteerStatus(e.stdout, st)
		},
	}
	cmd.Flags().StringVar(&path, "status-file", steer.DefaultStatusFile, "the agent's status file (steer.status_file)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printSteerStatus prints an agent's status as text.
func printSteerStatus(w io.Writer, st steer.Status) error {
	fmt.Fprintf(w, "cgroup: %s\nroutes: %s (as of %s)\n", st.Cgroup, st.NATS, st.At.Format("2006-01-02 15:04:05"))
	var hooks []string
	for _, h := range st.Hooks {
		s := h.Name + " attached"
		if !h.Attached {
			s = h.Name + " NOT attached: " + h.Error
		}
		hooks = append(hooks, s)
	}
	fmt.Fprintf(w, "hooks: %s\n", strings.Join(hooks, "; "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tADDRESS\tROLE\tBACKEND\tSINCE\tCONNECTS\tREFUSED")
	for _, s := range st.Services {
		backend, since := "none", ""
		if s.Route != nil && s.Route.Member != "" {
			backend = s.Route.Cluster + "/" + s.Route.Member + " " + s.Route.Addr
			since = s.Route.At.Format("15:04:05")
		}
		var counts []string
		for b, n := range s.Connects {
			counts = append(counts, fmt.Sprintf("%s=%d", b, n))
		}
		sort.Strings(counts)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Address, s.Role, backend, since, strings.Join(counts, ","), s.Refused)
	}
	return tw.Flush()
}
