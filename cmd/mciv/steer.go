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
	cmd.AddCommand(steerStatusCmd(e), steerDetachCmd(e))
	return cmd
}

// steerDetachCmd is `mciv steer detach`: remove the steering an agent
// pinned (its links and maps in bpffs), so the application's connects go
// where it dials again.
func steerDetachCmd(e *env) *cobra.Command {
	var pinDir string
	cmd := &cobra.Command{
		Use:   "detach",
		Short: "Remove the pinned steering of this host (connects go where the application dials); stop `mciv steer` first or it re-attaches",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pinDir == "" {
				cfg, err := config.Load(e.configPath, e.getenv)
				if err != nil {
					return err
				}
				cfg.Steer.SetDefaults()
				pinDir = cfg.Steer.Pins()
				if pinDir == "" {
					return fmt.Errorf("mciv steer detach: no pin directory (steer.cgroup or steer.pin_dir in the config, or --pin-dir)")
				}
			}
			done, err := steer.Detach(pinDir)
			for _, d := range done {
				fmt.Fprintln(e.stdout, d)
			}
			if err != nil {
				return fmt.Errorf("mciv steer detach %s: %w", pinDir, err)
			}
			if len(done) > 0 && !strings.HasPrefix(done[0], "nothing pinned") {
				fmt.Fprintf(e.stdout, "steering removed (%s): new connects to the service addresses are no longer rewritten\n", pinDir)
			}
			return nil
		},
	}
	addConfigFlag(cmd, e)
	cmd.Flags().StringVar(&pinDir, "pin-dir", "", "the agent's pin directory (default: steer.pin_dir, from steer.cgroup)")
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
		if h.Adopted {
			s += " (adopted)"
		}
		if !h.Attached {
			s = h.Name + " NOT attached: " + h.Error
		}
		hooks = append(hooks, s)
	}
	fmt.Fprintf(w, "hooks: %s\n", strings.Join(hooks, "; "))
	if st.PinDir != "" {
		fmt.Fprintf(w, "pinned in: %s (steering stays when the agent stops; `mciv steer detach` removes it)\n", st.PinDir)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tADDRESS\tROLE\tBACKEND\tSINCE\tCONNECTS\tREFUSED")
	for _, s := range st.Services {
		backend, since := "none", ""
		var total uint64
		for _, n := range s.Connects {
			total += n
		}
		if s.Route != nil && s.Route.Member != "" {
			backend = s.Route.Cluster + "/" + s.Route.Member + " " + s.Route.Addr
			if len(s.Route.Spread) > 0 {
				// The spread: each member, its weight and its share of the
				// connects counted so far.
				var parts []string
				for _, t := range s.Route.Spread {
					parts = append(parts, fmt.Sprintf("%s/%s %s w%d", t.Cluster, t.Member, t.Addr, t.Weight))
				}
				backend = "spread " + strings.Join(parts, ", ")
			}
			since = s.Route.At.Format("15:04:05")
		}
		var counts []string
		for b, n := range s.Connects {
			share := ""
			if total > 0 {
				share = fmt.Sprintf(" (%d%%)", n*100/total)
			}
			counts = append(counts, fmt.Sprintf("%s=%d%s", b, n, share))
		}
		sort.Strings(counts)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Address, s.Role, backend, since, strings.Join(counts, ","), s.Refused)
	}
	return tw.Flush()
}
