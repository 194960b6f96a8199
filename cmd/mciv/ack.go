package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/user"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// ackCmd is `mciv ack`: an operator acknowledges, resolves, silences or
// approves from the command line. With --creds (an operator credential)
// the ack is made in the credential's name and signed with its key, so
// that the notifier, the analyzer and the actuator know who made it.
func ackCmd(e *env) *cobra.Command {
	var (
		conn                            natsFlags
		cluster, fingerprint, nonce, by string
		resolve, approve                bool
		silenceFor                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "ack --cluster CLUSTER --fingerprint FP [--resolve | --silence D | --approve --nonce N]",
		Short: "Acknowledge (stop the phone escalation), resolve, silence or approve an alert as an operator",
		Example: `  mciv ack --creds alice.creds --nats tls://nats-1:4222 --cluster payments --fingerprint 5f1c0e2a9b7d3c41
  mciv ack --creds alice.creds --cluster payments --fingerprint 5f1c0e2a9b7d3c41 --resolve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := wire.ValidToken(cluster); err != nil {
				return fmt.Errorf("ack: --cluster: %w", err)
			}
			if fingerprint == "" {
				return errors.New("ack: --fingerprint is required (mciv tail shows alerts with theirs)")
			}
			ack := &wire.Ack{Fingerprint: fingerprint, Cluster: cluster, Action: wire.AckAcknowledge, Via: wire.ViaCLI,
				At: time.Now().UTC(), ID: "cli-" + randomID()}
			n := 0
			if resolve {
				ack.Action, n = wire.AckResolve, n+1
			}
			if silenceFor > 0 {
				ack.Action, ack.Until, n = wire.AckSilence, ack.At.Add(silenceFor), n+1
			}
			if approve {
				if nonce == "" {
					return errors.New("ack: --approve needs --nonce, the pending approval's (on its pending_approval record in MCIV_ACTIONS)")
				}
				ack.Action, ack.Nonce, n = wire.AckApprove, nonce, n+1
			}
			if n > 1 {
				return errors.New("ack: choose one of --resolve, --silence, --approve")
			}
			var signer *auth.Signer
			if conn.creds != "" {
				s, err := auth.SignerFromCredsFile(conn.creds)
				if err != nil {
					return fmt.Errorf("ack: %w", err)
				}
				id, err := s.Identity()
				if err != nil {
					return fmt.Errorf("ack: %w", err)
				}
				if by != "" && by != id.Name {
					return fmt.Errorf("ack: with --creds an ack is made in the credential's name (%q), not %q", id.Name, by)
				}
				signer, ack.By = s, id.Name
			} else {
				ack.By = by
				if ack.By == "" {
					ack.By = "cli"
					if u, err := user.Current(); err == nil {
						ack.By = u.Username
					}
				}
			}
			data, err := wire.EncodeAck(ack)
			if err != nil {
				return err
			}
			m := &nats.Msg{Subject: wire.AckSubject(cluster), Data: data}
			if err := signer.Sign(m); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			// Bounded: a publication the server refuses gets no answer.
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			nc, err := conn.connect(ctx, e, "mciv-ack")
			if err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			defer nc.Close()
			js, err := bus.JetStream(nc)
			if err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(ack.ID)); err != nil {
				return fmt.Errorf("ack: publish: %w", err)
			}
			how := "unsigned (no --creds)"
			if signer != nil {
				how = "signed"
			}
			fmt.Fprintf(e.stdout, "%s %s of %s by %s via cli, %s (ack %s)\n", ack.Action, fingerprint, cluster, ack.By, how, ack.ID)
			return nil
		},
	}
	conn.add(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "the alert's cluster")
	f.StringVar(&fingerprint, "fingerprint", "", "the alert's fingerprint")
	f.BoolVar(&resolve, "resolve", false, "declare the alert over (it stays quiet for its rule's keep_firing_for)")
	f.DurationVar(&silenceFor, "silence", 0, "acknowledge and mark it silenced for this long (mciv silence add writes the silence itself)")
	f.BoolVar(&approve, "approve", false, "approve a pending failover (failover.operator_approvals, and the credential's name in failover.approvers)")
	f.StringVar(&nonce, "nonce", "", "the pending approval's nonce (with --approve)")
	f.StringVar(&by, "by", "", "who, without --creds (default: the OS user); with --creds the credential's name")
	return cmd
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
