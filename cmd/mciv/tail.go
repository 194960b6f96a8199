package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

// tailLine is one line of `mciv tail --json`.
type tailLine struct {
	Subject string `json:"subject"`
	Message any    `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func tailCmd(e *env) *cobra.Command {
	var (
		conn    natsFlags
		subject string
		count   int
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print mciv messages (samples, events, alerts) from NATS, decoded",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			nc, err := conn.connect(ctx, e, "mciv-tail")
			if err != nil {
				return err
			}
			defer nc.Close()
			msgs := make(chan *nats.Msg, 1024)
			sub, err := nc.ChanSubscribe(subject, msgs)
			if err != nil {
				return fmt.Errorf("subscribe %s: %w", subject, err)
			}
			defer func() { _ = sub.Unsubscribe() }()
			enc := json.NewEncoder(e.stdout)
			for n := 0; count <= 0 || n < count; n++ {
				var m *nats.Msg
				select {
				case <-ctx.Done():
					return nil
				case m = <-msgs:
				}
				v, derr := wire.Decode(m.Subject, m.Data)
				line := tailLine{Subject: m.Subject, Message: v}
				if derr != nil {
					line = tailLine{Subject: m.Subject, Error: derr.Error()}
				}
				if asJSON {
					if err := enc.Encode(line); err != nil {
						return err
					}
					continue
				}
				if derr != nil {
					fmt.Fprintf(e.stdout, "%s %s: undecodable: %v\n", time.Now().Format(time.TimeOnly), m.Subject, derr)
					continue
				}
				b, _ := json.Marshal(v)
				fmt.Fprintf(e.stdout, "%s %s %s\n", time.Now().Format(time.TimeOnly), m.Subject, b)
			}
			return nil
		},
	}
	conn.add(cmd.Flags())
	cmd.Flags().StringVar(&subject, "subject", "mciv.>", "subject to follow (wildcards allowed)")
	cmd.Flags().IntVar(&count, "count", 0, "stop after N messages (0: run until interrupted)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")
	return cmd
}
