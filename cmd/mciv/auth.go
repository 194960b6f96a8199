package main

import (
	"fmt"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/spf13/cobra"
)

// authCmd creates the trust root, issues per-host, per-role credentials,
// writes the nats-server configuration of an external cluster and
// provisions the shared streams.
func authCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Trust on the bus: create the trust root, issue credentials, configure nats-server",
	}
	var dir string
	cmd.PersistentFlags().StringVar(&dir, "dir", "/etc/mciv/auth", "trust root directory (seeds, mode 0600)")

	var maxStore int64
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the trust root: operator, system and MCIV accounts, one scoped signing key per role",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := auth.Init(dir, auth.InitOptions{MaxStore: maxStore})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "trust root created in %s (account %s)\n", dir, t.AccountKey)
			fmt.Fprintf(e.stdout, "next: mciv auth issue --dir %s --role collector --cluster CLUSTER --name HOST --out HOST-collector.creds\n", dir)
			return nil
		},
	}
	initCmd.Flags().Int64Var(&maxStore, "max-store", auth.DefaultMaxStore, "JetStream file storage the MCIV account may use (bytes)")

	var (
		role, cluster, name, out string
		ttl                      time.Duration
	)
	issue := &cobra.Command{
		Use:   "issue --role ROLE --cluster CLUSTER --name NAME [--out FILE]",
		Short: "Issue a credentials file for one host and role (collector, analyzer, notifier, actuator, operator, admin)",
		Example: `  mciv auth issue --role collector --cluster payments --name db-1 --out db-1-collector.creds
  mciv auth issue --role operator --cluster payments --name alice --ttl 720h --out alice.creds`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			t, err := auth.Load(dir)
			if err != nil {
				return err
			}
			c, err := t.Issue(auth.Identity{Role: r, Cluster: cluster, Name: name}, ttl)
			if err != nil {
				return err
			}
			data, err := c.CredsFile()
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err := e.stdout.Write(data)
				return err
			}
			if err := auth.WriteSecret(out, data); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wrote %s (%s %s/%s, mode 0600)\n", out, r, cluster, name)
			return nil
		},
	}
	issue.Flags().StringVar(&role, "role", "", "collector, analyzer, notifier, actuator, operator or admin")
	issue.Flags().StringVar(&cluster, "cluster", "default", "database cluster (lower case)")
	issue.Flags().StringVar(&name, "name", "", "host name for a collector; any name for the other roles")
	issue.Flags().StringVar(&out, "out", "", "file to write (mode 0600); empty or - prints it")
	issue.Flags().DurationVar(&ttl, "ttl", 0, "expiry (0: none)")
	_ = issue.MarkFlagRequired("role")
	_ = issue.MarkFlagRequired("name")

	var sc auth.ServerConfig
	serverConfig := &cobra.Command{
		Use:   "server-config",
		Short: "Print the nats-server configuration of an external cluster that enforces the roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := auth.Load(dir)
			if err != nil {
				return err
			}
			return t.WriteServerConfig(e.stdout, sc)
		},
	}
	f := serverConfig.Flags()
	f.StringVar(&sc.Name, "name", "", "server_name")
	f.StringVar(&sc.Listen, "listen", "0.0.0.0:4222", "client listen address")
	f.StringVar(&sc.StoreDir, "store-dir", "/var/lib/nats", "JetStream directory")
	f.Int64Var(&sc.MaxStore, "max-store", auth.DefaultMaxStore, "JetStream file store limit (bytes)")
	f.StringVar(&sc.ClusterName, "cluster-name", "", "route cluster name (several servers)")
	f.StringVar(&sc.ClusterListen, "cluster-listen", "0.0.0.0:6222", "route listen address")
	f.StringSliceVar(&sc.Routes, "routes", nil, "routes to the peers, e.g. nats://nats-2:6222")
	f.StringVar(&sc.CertFile, "tls-cert", "", "server certificate (PEM)")
	f.StringVar(&sc.KeyFile, "tls-key", "", "server key (PEM)")
	f.StringVar(&sc.CAFile, "tls-ca", "", "CA of client certificates (PEM)")
	f.BoolVar(&sc.Verify, "tls-verify", false, "require client certificates")

	var conn natsFlags
	provision := &cobra.Command{
		Use:   "provision --nats URL --creds admin.creds",
		Short: "Create the shared streams (MCIV_ALERTS, MCIV_ACTIONS, MCIV_ACKS) with admin credentials, once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, err := conn.connect(cmd.Context(), e, "mciv-provision")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := bus.JetStream(nc)
			if err != nil {
				return err
			}
			if err := bus.EnsureStreams(cmd.Context(), js, bus.StreamOptions{}); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "streams provisioned")
			return nil
		},
	}
	conn.add(provision.Flags())

	cmd.AddCommand(initCmd, issue, serverConfig, provision)
	return cmd
}

// warnSecretConfig warns when the configuration file, which may hold
// tokens, is readable by others.
func warnSecretConfig(e *env, path string) {
	if path == "" {
		return
	}
	if err := auth.CheckSecretFile(path); err != nil {
		e.logger().Warn("configuration file readable by others", "warning", err)
	}
}
