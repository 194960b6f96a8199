package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/nats-io/nats.go/jetstream"
)

// FormatAck is the console line of an acknowledgement (button, phone key,
// slash command): "ACK      acknowledge fp by U123 via slack".
func FormatAck(a *wire.Ack) string {
	s := fmt.Sprintf("%-8s %s %s by %s", "ACK", a.Action, a.Fingerprint, notifier.OneLine(a.By))
	if a.Via != "" {
		s += " via " + a.Via
	}
	if !a.Until.IsZero() {
		s += " until " + a.Until.UTC().Format(time.RFC3339)
	}
	return s
}

// FormatAction is the console line of an audited action, labelled by its
// kind: FAILOVER for a switchover or failover decision, RESOLVE for an
// alert a person resolved, STEER for a route change.
func FormatAction(a *wire.Action) string {
	label := "FAILOVER"
	switch a.Kind {
	case wire.ActionKindResolve:
		label = "RESOLVE"
	case "steer":
		label = "STEER"
	}
	s := fmt.Sprintf("%-8s %s %s cluster=%s", label, a.Kind, a.Decision, a.Cluster)
	if a.Kind == wire.ActionKindResolve && a.Fingerprint != "" {
		s += " " + a.Fingerprint
	}
	if a.From != "" || a.To != "" {
		s += fmt.Sprintf(" %s→%s", a.From, a.To)
	}
	if a.Safeguard != "" {
		s += " safeguard=" + a.Safeguard
	}
	if a.Reason != "" {
		s += " — " + notifier.OneLine(a.Reason)
	}
	return s
}

// FormatSilence is the console line of a silence that started (on) or
// ended.
func FormatSilence(s *silence.Silence, on bool) string {
	if !on {
		return fmt.Sprintf("%-8s %s %s ended", "UNSILENC", s.ID, s.Matchers.String())
	}
	line := fmt.Sprintf("%-8s %s %s until %s by %s", "SILENCE", s.ID, s.Matchers.String(), s.EndsAt.UTC().Format(time.RFC3339), notifier.OneLine(s.CreatedBy))
	if s.Comment != "" {
		line += " — " + notifier.OneLine(s.Comment)
	}
	return line
}

// Feed prints, besides the alerts, what people and the actuator do:
// acknowledgements (MCIV_ACKS), failover decisions (MCIV_ACTIONS) and
// silences starting and ending. It reads the streams with ephemeral
// ordered consumers from now on: the console shows what happens while it
// runs.
type Feed struct {
	out      io.Writer
	silences *silence.Store
	every    time.Duration
	now      func() time.Time
	log      *slog.Logger
	acks     *auth.AckChecker // SetAckChecker; nil: every ack is shown
	mu       sync.Mutex       // one line at a time
}

// SetAckChecker shows only the acknowledgements c accepts (auth on: made
// by the notifier for a person, or by an operator in its own name); the
// refusal's audit record is shown instead, from the actions stream. Call
// it before Run.
func (f *Feed) SetAckChecker(c *auth.AckChecker) { f.acks = c }

// NewFeed returns a feed printing to out; silences may be nil (no
// silence lines), every is the silence poll interval (default 10s).
func NewFeed(out io.Writer, silences *silence.Store, every time.Duration, logger *slog.Logger) *Feed {
	if every <= 0 {
		every = 10 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{out: out, silences: silences, every: every, now: time.Now, log: logger}
}

func (f *Feed) println(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, _ = fmt.Fprintln(f.out, s)
}

// Run prints until ctx ends; it returns nil then.
func (f *Feed) Run(ctx context.Context, js jetstream.JetStream) error {
	var wg sync.WaitGroup
	wg.Go(func() {
		f.stream(ctx, js, bus.AcksStream, wire.AcksWildcard, func(m jetstream.Msg) (string, error) {
			a, err := wire.DecodeAck(m.Data())
			if err != nil {
				return "", err
			}
			if _, err := f.acks.Check(m.Subject(), m.Data(), m.Headers(), a); err != nil {
				return "", err
			}
			return FormatAck(a), nil
		})
	})
	wg.Go(func() {
		f.stream(ctx, js, bus.ActionsStream, wire.ActionsWildcard, func(m jetstream.Msg) (string, error) {
			a, err := wire.DecodeAction(m.Data())
			if err != nil {
				return "", err
			}
			return FormatAction(a), nil
		})
	})
	if f.silences != nil {
		wg.Go(func() { f.pollSilences(ctx) })
	}
	wg.Wait()
	return nil
}

// stream prints every new message of stream until ctx ends, recreating
// its ordered consumer after failures.
func (f *Feed) stream(ctx context.Context, js jetstream.JetStream, stream, filter string, format func(jetstream.Msg) (string, error)) {
	for ctx.Err() == nil {
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverNewPolicy,
		})
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = cons.Consume(func(m jetstream.Msg) {
				if line, ferr := format(m); ferr == nil {
					f.println(line)
				}
			})
			if err == nil {
				<-ctx.Done()
				cc.Stop()
				return
			}
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) {
			return
		}
		f.log.Debug("console feed consumer failed; retrying", "stream", stream, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// pollSilences prints silences as they start and end.
func (f *Feed) pollSilences(ctx context.Context) {
	shown := map[string]bool{} // id -> printed as active
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		if all, err := f.silences.List(ctx); err == nil {
			now := f.now()
			for _, s := range all {
				active := s.Active(now)
				switch {
				case active && !shown[s.ID]:
					shown[s.ID] = true
					f.println(FormatSilence(s, true))
				case !active && shown[s.ID]:
					delete(shown, s.ID)
					f.println(FormatSilence(s, false))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
