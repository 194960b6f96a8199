package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/spf13/cobra"
)

// silenceCmd manages silences in the MCIV_SILENCES bucket over NATS.
func silenceCmd(e *env) *cobra.Command {
	var conn natsFlags
	cmd := &cobra.Command{
		Use:   "silence",
		Short: "Add, list and expire silences (mute alerts matching label matchers until a time)",
	}
	conn.add(cmd.PersistentFlags())
	open := func(ctx context.Context) (*silence.Store, func(), error) {
		nc, err := conn.connect(ctx, e, "mciv-silence")
		if err != nil {
			return nil, nil, err
		}
		js, err := bus.JetStream(nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		st, err := silence.Open(ctx, js, 1, nil)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return st, nc.Close, nil
	}

	var (
		matchers []string
		duration time.Duration
		comment  string
		author   string
	)
	add := &cobra.Command{
		Use:   "add --matcher NAME=VALUE... --duration D",
		Short: "Add a silence; prints its id",
		Example: `  mciv silence add --matcher 'host=db-1' --duration 1h --comment 'kernel upgrade'
  mciv silence add --matcher 'alertname=TCPRetransmitRateHigh' --matcher 'cluster=~"pg-.*"' --duration 30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := labels.ParseAll(matchers)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				return errors.New("at least one --matcher is required")
			}
			if duration <= 0 {
				return errors.New("--duration must be positive")
			}
			st, closeFn, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			now := time.Now()
			s, err := st.Add(cmd.Context(), silence.Silence{Matchers: ms, StartsAt: now, EndsAt: now.Add(duration), CreatedBy: author, Comment: comment})
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, s.ID)
			return nil
		},
	}
	add.Flags().StringArrayVarP(&matchers, "matcher", "m", nil, "label matcher: name=value, name!=value, name=~regexp, name!~regexp (repeatable; all must match)")
	add.Flags().DurationVarP(&duration, "duration", "d", time.Hour, "how long the silence lasts")
	add.Flags().StringVarP(&comment, "comment", "c", "", "why")
	add.Flags().StringVar(&author, "author", "cli:"+e.getenv("USER"), "who")

	var all, asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List active silences (--all: expired ones too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, closeFn, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			ss, err := st.List(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			var shown []*silence.Silence
			for _, s := range ss {
				if all || s.EndsAt.After(now) {
					shown = append(shown, s)
				}
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				for _, s := range shown {
					if err := enc.Encode(s); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tMATCHERS\tSTATE\tENDS\tCREATED BY\tCOMMENT")
			for _, s := range shown {
				state := "active"
				switch {
				case !s.EndsAt.After(now):
					state = "expired"
				case s.StartsAt.After(now):
					state = "pending"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Matchers, state, s.EndsAt.Local().Format(time.DateTime), s.CreatedBy, s.Comment)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include expired silences")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")

	expire := &cobra.Command{
		Use:   "expire ID...",
		Short: "End silences now",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, closeFn, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			for _, id := range args {
				if err := st.Expire(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, "expired", id)
			}
			return nil
		},
	}
	cmd.AddCommand(add, list, expire)
	return cmd
}
