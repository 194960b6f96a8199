package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/mciv/mciv/analyzer/replay"
	"github.com/mciv/mciv/internal/wire"
)

func recordCmd(e *env) *cobra.Command {
	var (
		conn         natsFlags
		out, subject string
		duration     time.Duration
		count        int
	)
	cmd := &cobra.Command{
		Use:   "record --nats URL --out FILE [--duration D]",
		Short: "Save live sample batches from NATS to a file for mciv replay --samples",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("record: --out is required")
			}
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			nc, err := conn.connect(ctx, e, "mciv-record")
			if err != nil {
				return err
			}
			defer nc.Close()
			f, err := os.Create(out)
			if err != nil {
				return fmt.Errorf("record: %w", err)
			}
			n, rerr := record(ctx, nc, subject, replay.NewRecorder(f), count, time.Now)
			if err := f.Close(); err != nil && rerr == nil {
				rerr = fmt.Errorf("record: %w", err)
			}
			fmt.Fprintf(e.stderr, "recorded %d messages to %s\n", n, out)
			return rerr
		},
	}
	conn.add(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "file to write")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: until interrupted)")
	cmd.Flags().IntVar(&count, "count", 0, "stop after N messages (0: no limit)")
	cmd.Flags().StringVar(&subject, "subject", wire.SamplesWildcard, "samples subject to record (wildcards allowed)")
	return cmd
}

// record writes the messages on subject to rec, with their receive time
// as now says, until ctx ends or count messages (count > 0) were written.
func record(ctx context.Context, nc *nats.Conn, subject string, rec *replay.Recorder, count int, now func() time.Time) (int, error) {
	msgs, stop, err := subscribeSamples(ctx, nc, subject)
	if err != nil {
		return 0, err
	}
	defer stop()
	return recordFrom(ctx, msgs, rec, count, now)
}

// subscribeSamples subscribes to subject; the subscription is in place on
// the server when it returns.
func subscribeSamples(ctx context.Context, nc *nats.Conn, subject string) (<-chan *nats.Msg, func(), error) {
	msgs := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(subject, msgs)
	if err != nil {
		return nil, nil, fmt.Errorf("record: subscribe %s: %w", subject, err)
	}
	stop := func() { _ = sub.Unsubscribe() }
	if err := nc.FlushWithContext(ctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("record: subscribe %s: %w", subject, err)
	}
	return msgs, stop, nil
}

// recordFrom writes messages to rec until ctx ends or count messages
// (count > 0) were written.
func recordFrom(ctx context.Context, msgs <-chan *nats.Msg, rec *replay.Recorder, count int, now func() time.Time) (int, error) {
	for count <= 0 || rec.Count() < count {
		select {
		case <-ctx.Done():
			return rec.Count(), rec.Flush()
		case m := <-msgs:
			if err := rec.Record(now(), m.Data); err != nil {
				return rec.Count(), err
			}
		}
	}
	return rec.Count(), rec.Flush()
}
