package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// security is how this process's parts prove who they are on the bus.
type security struct {
	cfg   config.Config
	trust *auth.Trust // the trust root, when nats.auth names one
}

// newSecurity loads the trust root of cfg, if any, and checks the
// configuration's secrets are not readable by others.
func newSecurity(cfg config.Config, logger *slog.Logger) (*security, error) {
	s := &security{cfg: cfg}
	if cfg.NATS.Auth != "" {
		t, err := auth.Load(cfg.NATS.Auth)
		if err != nil {
			return nil, err
		}
		s.trust = t
	}
	for _, f := range []string{cfg.NATS.Creds, cfg.NATS.NKey, cfg.NATS.TLS.KeyFile, cfg.NATS.ServerTLS.KeyFile} {
		if strings.Contains(f, "{role}") {
			for _, r := range auth.Roles {
				warnSecret(logger, strings.ReplaceAll(f, "{role}", string(r)))
			}
			continue
		}
		warnSecret(logger, f)
	}
	return s, nil
}

func warnSecret(logger *slog.Logger, path string) {
	if path == "" {
		return
	}
	if err := auth.CheckSecretFile(path); err != nil {
		logger.Warn("secret file readable by others", "warning", err)
	}
}

// secured says whether the parts use credentials (and so cannot create the
// shared streams themselves).
func (s *security) secured() bool {
	return s.trust != nil || s.cfg.NATS.Creds != "" || s.cfg.NATS.NKey != ""
}

// embedded returns the security options of the embedded server.
func (s *security) embedded() (bus.EmbeddedSecure, error) {
	es := bus.EmbeddedSecure{MaxStore: s.cfg.NATS.MaxStore}
	if s.trust != nil {
		es.Auth = s.trust.ConfigureServer
	}
	tc, err := s.cfg.NATS.EmbeddedTLS().Server()
	if err != nil {
		return es, fmt.Errorf("embedded nats: %w", err)
	}
	es.TLS = tc
	return es, nil
}

// roleOf is the role each part of app.Run connects as; steering connects
// as the controller when it runs one (whose permissions cover the agent's
// reads), else as an agent.
func (s *security) roleOf(part string) auth.Role {
	switch part {
	case "steer":
		if s.cfg.Steer.Controller {
			return auth.SteerController
		}
		return auth.Steer
	case "collector":
		return auth.Collector
	case "analyzer":
		return auth.Analyzer
	case "notifier":
		return auth.Notifier
	case "failover":
		return auth.Actuator
	}
	return auth.Admin
}

// connectOptions returns how part connects: a credential issued in memory
// by this host's trust root, or the configured credentials file (where
// "{role}" stands for the part's role), and TLS.
func (s *security) connectOptions(part string) (bus.ConnectOptions, error) {
	var o bus.ConnectOptions
	tc, err := s.cfg.NATS.TLS.Client()
	if err != nil {
		return o, err
	}
	o.TLS = tc
	role := s.roleOf(part)
	if s.trust != nil && s.cfg.NATS.Creds == "" {
		c, err := s.trust.Issue(auth.Identity{Role: role, Cluster: s.cfg.Cluster, Name: s.cfg.Host}, 0)
		if err != nil {
			return o, fmt.Errorf("%s credentials: %w", part, err)
		}
		o.UserJWT, o.UserSeed = c.JWT, c.Seed
		return o, nil
	}
	o.CredsFile = strings.ReplaceAll(s.cfg.NATS.Creds, "{role}", string(role))
	o.NKeyFile = s.cfg.NATS.NKey
	return o, nil
}

// provision creates the shared streams as the admin role: the part roles
// may use them but not create, change or delete them. It runs only where
// this process holds the trust root (mciv up with nats.auth).
func (s *security) provision(ctx context.Context, url string, logger *slog.Logger) error {
	if s.trust == nil {
		return nil
	}
	o, err := s.connectOptions("admin")
	if err != nil {
		return err
	}
	o.Name = "mciv-provision " + s.cfg.Cluster + "/" + s.cfg.Host
	o.Logger = logger
	nc, err := bus.Connect(ctx, url, o)
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	defer nc.Close()
	js, err := bus.JetStream(nc)
	if err != nil {
		return err
	}
	return bus.EnsureStreams(ctx, js, bus.StreamOptions{})
}

// ensureStreams makes sure the streams a part uses exist: it creates them
// on an open bus, and waits for them (created by `mciv auth provision` or
// the trust root's host) when the part has credentials.
func (s *security) ensureStreams(ctx context.Context, js jetstream.JetStream, logger *slog.Logger, replicas int, streams ...string) error {
	if !s.secured() {
		return bus.EnsureStreams(ctx, js, bus.StreamOptions{Replicas: replicas})
	}
	return waitStreams(ctx, js, logger, streams...)
}

// waitStreams polls until every stream exists or ctx ends.
func waitStreams(ctx context.Context, js jetstream.JetStream, logger *slog.Logger, streams ...string) error {
	warned := false
	for _, name := range streams {
		for {
			_, err := js.Stream(ctx, name)
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrStreamNotFound) && ctx.Err() != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			if !warned {
				logger.Warn("waiting for the bus's streams", "stream", name, "err", err,
					"fix", "run `mciv auth provision --nats URL --creds admin.creds` once")
				warned = true
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("stream %s: %w", name, ctx.Err())
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// ackTrust is how a part signs the acknowledgements it makes and checks
// the ones it reads (internal/auth AckChecker).
type ackTrust struct {
	signer   *auth.Signer   // the part's own credential; nil: acks go out unsigned
	verifier *auth.Verifier // the MCIV account of nats.auth; nil: cannot verify
	secured  bool           // the bus requires credentials
}

// checker returns who may make the acks a part acts on. Without a trust
// root on a secured bus, approvals (strict) are all refused, while the
// notifier and the analyzer accept acks as without auth (a warning says
// so at start): refusing every Slack press would leave people paged.
func (t ackTrust) checker(allowOperator, strict bool) *auth.AckChecker {
	switch {
	case t.verifier != nil:
		return auth.NewAckChecker(t.verifier, allowOperator)
	case t.secured && strict:
		return auth.NewUnverifiableAckChecker("no trust root to verify approvals with: set nats.auth to a directory holding the trust root's JWTs")
	}
	return auth.NewAckChecker(nil, allowOperator)
}

// ackTrust returns the signer of the credential in o and the verifier of
// the trust root.
func (s *security) ackTrust(o bus.ConnectOptions) (ackTrust, error) {
	t := ackTrust{secured: s.secured()}
	if s.trust != nil {
		v, err := auth.NewVerifier(s.trust.AccountJWT)
		if err != nil {
			return t, err
		}
		t.verifier = v
	}
	var err error
	switch {
	case o.UserJWT != "":
		t.signer, err = auth.NewSigner(o.UserJWT, o.UserSeed)
	case o.CredsFile != "":
		t.signer, err = auth.SignerFromCredsFile(o.CredsFile)
	}
	return t, err
}

// warnUnverified says, once, what a secured bus without a trust root does
// not guarantee.
func (s *security) warnUnverified(logger *slog.Logger) {
	if s.secured() && s.trust == nil {
		logger.Warn("acknowledgements are not verified: the bus needs credentials but nats.auth names no trust root; "+
			"failover approvals are refused, Slack and phone acks are taken as they come",
			"fix", "copy operator.jwt, system.jwt and account.jwt of the trust root to this host and set nats.auth to their directory")
	}
}
