package main

import (
	"context"
	"fmt"
	"os/user"
	"time"

	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/bus"
	"github.com/spf13/cobra"
)

// failoverCmd is `mciv failover pause|resume|status`: the global kill switch
// of the failover actuator, kept in JetStream KV so that every actuator sees it.
func failoverCmd(e *env) *cobra.Command {
	var (
		conn               natsFlags
		bucket, reason, by string
	)
	open := func(ctx context.Context) (*actuator.Store, func(), error) {
		nc, err := conn.connect(ctx, e, "mciv-failover-cli")
		if err != nil {
			return nil, nil, err
		}
		js, err := bus.JetStream(nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		s, err := actuator.OpenState(ctx, js, bucket)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return s, nc.Close, nil
	}
	who := func() string {
		if by != "" {
			return by
		}
		if u, err := user.Current(); err == nil {
			return u.Username
		}
		return "cli"
	}
	set := func(paused bool) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			s, closeFn, err := open(ctx)
			if err != nil {
				return fmt.Errorf("failover: %w", err)
			}
			defer closeFn()
			p := actuator.PauseInfo{Paused: paused, By: who(), Reason: reason, At: time.Now().UTC()}
			if err := s.SetPaused(ctx, p); err != nil {
				return fmt.Errorf("failover: %w", err)
			}
			state := "resumed"
			if paused {
				state = "paused"
			}
			fmt.Fprintf(e.stdout, "automatic failover %s by %s\n", state, p.By)
			return nil
		}
	}
	cmd := &cobra.Command{Use: "failover", Short: "Control the guarded failover actuator"}
	conn.add(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVar(&bucket, "bucket", actuator.DefaultKVBucket, "KV bucket prefix (failover.kv_bucket)")
	pause := &cobra.Command{Use: "pause", Short: "Stop every actuator from acting (decisions are still audited)", Args: cobra.NoArgs, RunE: set(true)}
	pause.Flags().StringVar(&reason, "reason", "", "why, for the audit trail")
	pause.Flags().StringVar(&by, "by", "", "who (default: the OS user)")
	resume := &cobra.Command{Use: "resume", Short: "Let the actuators act again", Args: cobra.NoArgs, RunE: set(false)}
	resume.Flags().StringVar(&by, "by", "", "who (default: the OS user)")
	status := &cobra.Command{
		Use: "status", Short: "Print whether automatic failover is paused", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			s, closeFn, err := open(ctx)
			if err != nil {
				return fmt.Errorf("failover: %w", err)
			}
			defer closeFn()
			p, err := s.Paused(ctx)
			if err != nil {
				return fmt.Errorf("failover: %w", err)
			}
			if !p.Paused {
				fmt.Fprintln(e.stdout, "automatic failover: active")
				return nil
			}
			fmt.Fprintf(e.stdout, "automatic failover: paused by %s at %s: %s\n", p.By, p.At.Format(time.RFC3339), p.Reason)
			return nil
		},
	}
	cmd.AddCommand(pause, resume, status)
	return cmd
}
