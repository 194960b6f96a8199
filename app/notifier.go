package app

import (
	"context"
	"errors"
	"fmt"
	"github.com/mciv/mciv/notifier/tts/engines"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/httpserver"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/chart"
	"github.com/mciv/mciv/notifier/console"
	"github.com/mciv/mciv/notifier/escalation"
	"github.com/mciv/mciv/notifier/inhibit"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/route"
	"github.com/mciv/mciv/notifier/silence"
	slacknotify "github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/voice"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// notifierParts is what startNotifier started, for the parts wired after it
// (voice and phone escalation post into Slack threads through Threads).
type notifierParts struct {
	// Threads posts into an alert's Slack thread; nil without Slack.
	Threads slacknotify.ThreadPoster
	// Dispatcher delivers the alerts stream to the integrations.
	Dispatcher *notifier.Dispatcher
	// replies queues thread replies for the phone escalation; nil without
	// Slack.
	replies *slacknotify.ReplyQueue
}

// startNotifier starts Marvel: the dispatcher with silences and inhibition,
// the console and the grouped Slack integration, the Slack thread feed
// (acknowledgements and failover actions), the chart recorder and the
// Slack interactivity endpoint.
func startNotifier(ctx context.Context, cfg config.Config, out io.Writer, nc *nats.Conn, js jetstream.JetStream, acks ackTrust,
	reg prometheus.Registerer, logger *slog.Logger, start func(string, func(context.Context) error)) (notifierParts, error) {
	var parts notifierParts
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("part", "notifier")
	replicas := bus.Replicas(cfg.NATS.Replicas, nc)
	nfl, err := nflog.Open(ctx, js, nflog.Options{Replicas: replicas})
	if err != nil {
		return parts, fmt.Errorf("notifier: %w", err)
	}
	sil, err := silence.Open(ctx, js, replicas, nil)
	if err != nil {
		return parts, fmt.Errorf("notifier: %w", err)
	}
	tree, err := route.New(cfg.Notifier.Route, cfg.Notifier.Receivers)
	if err != nil {
		return parts, fmt.Errorf("notifier: %w", err)
	}
	var integrations []notifier.Notifier
	if out != nil {
		integrations = append(integrations, console.New(out))
		feed := console.NewFeed(out, sil, 0, log)
		feed.SetAckChecker(acks.checker(true, false))
		start("notifier-console-feed", func(ctx context.Context) error { return feed.Run(ctx, js) })
	}
	if cfg.Slack.Enabled() {
		rec := chart.NewRecorder(0, 0)
		stopRec, err := rec.Subscribe(nc, log)
		if err != nil {
			return parts, fmt.Errorf("notifier: %w", err)
		}
		start("notifier-charts", func(ctx context.Context) error {
			<-ctx.Done()
			stopRec()
			return nil
		})
		inc, err := slacknotify.NewIncidents(slacknotify.IncidentsConfig{
			Config:   slacknotify.Config{Token: cfg.Slack.Token, Channel: cfg.Slack.Channel, APIURL: cfg.Slack.APIURL},
			Routes:   tree,
			Log:      nfl,
			Replica:  cfg.Host,
			Charter:  rec,
			Registry: reg,
			// Slack shows an ack as made only when the notifier (a press)
			// or an operator in its own name made it.
			AckChecker: acks.checker(true, false),
		}, log)
		if err != nil {
			return parts, fmt.Errorf("notifier: %w", err)
		}
		integrations = append(integrations, inc)
		parts.Threads = inc
		parts.replies = slacknotify.NewReplyQueue(inc, slacknotify.ReplyQueueConfig{Registry: reg})
		start("notifier-thread-replies", parts.replies.Run)
		start("notifier-threads", func(ctx context.Context) error { return inc.RunThreads(ctx, js) })
		start("notifier-silence-threads", func(ctx context.Context) error { return inc.RunSilences(ctx, sil, 0) })
		log.Info("slack notifications on", "slack", cfg.Slack.String())

		if err := startSlackInteractivity(ctx, cfg, js, acks.signer, nfl, sil, log, start); err != nil {
			return parts, err
		}
	}
	if cfg.Voice.On() {
		v, err := startVoice(ctx, cfg, out, parts.Threads, reg, log, start)
		if err != nil {
			// Speech is an extra: without espeak-ng (or Google) the
			// console and Slack still work.
			log.Warn("voice alerts off", "err", err, "fix", "apt-get install espeak-ng sox")
		} else {
			integrations = append(integrations, v)
		}
	}
	if cfg.OnCall.Enabled() && cfg.Twilio.Enabled() {
		var thread escalation.ThreadPoster
		if parts.replies != nil {
			// Through the reply queue: a slow or failing Slack must not
			// hold up the next call.
			thread = parts.replies
		}
		// Phone keys are signed as the notifier's; an ack stops a call
		// only when the notifier or an operator in its own name made it.
		refused := escalation.NewAcksRefusedCounter()
		if reg != nil {
			if err := reg.Register(refused); err != nil {
				return parts, fmt.Errorf("notifier: %w", err)
			}
		}
		svc, err := escalation.NewService(ctx, escalation.ServiceOptions{
			OnCall: cfg.OnCall, Twilio: cfg.Twilio, JS: js, Cluster: cfg.Cluster, Thread: thread, Logger: log.With("integration", "escalation"),
			Signer: acks.signer, AckChecker: acks.checker(true, false), AcksRefused: refused,
		})
		if err != nil {
			return parts, fmt.Errorf("notifier: phone escalation: %w", err)
		}
		integrations = append(integrations, svc.Engine())
		start("escalation", func(ctx context.Context) error { return svc.Run(ctx, nil) })
		log.Info("phone escalation on", "people", len(cfg.OnCall.People), "policies", len(cfg.OnCall.Policies))
	}
	muter := inhibit.NewMuter(cfg.Notifier.InhibitRules, sil, nfl)
	d := notifier.NewDispatcher(notifier.DispatcherConfig{Durable: cfg.Notifier.Durable, Muter: muter}, integrations, reg, log)
	start("notifier", func(ctx context.Context) error { return d.Run(ctx, js) })
	parts.Dispatcher = d
	return parts, nil
}

// startSlackInteractivity serves the buttons and /mciv: over Socket Mode
// when slack.socket_mode.app_token is set, over HTTP when
// slack.interactivity.listen is (buttons at the interactivity path, /mciv
// at /slack/commands; both transports may run, sharing one handler).
func startSlackInteractivity(ctx context.Context, cfg config.Config, js jetstream.JetStream, signer *auth.Signer, nfl *nflog.Log, sil *silence.Store,
	log *slog.Logger, start func(string, func(context.Context) error)) error {
	ic, sm := cfg.Slack.Interactivity, cfg.Slack.SocketMode
	if ic.Listen == "" && sm.AppToken == "" {
		return nil
	}
	var users []string
	for _, p := range cfg.OnCall.People {
		if p.Slack != "" {
			users = append(users, p.Slack)
		}
	}
	var (
		h   *slacknotify.Interactions
		err error
	)
	if ic.SigningSecret != "" {
		h, err = slacknotify.NewInteractions(ic.SigningSecret, js, nfl, sil, nil, log)
	} else {
		h, err = slacknotify.NewSocketInteractions(js, nfl, sil, nil, log)
	}
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	h.AllowUsers(users)
	h.SetSigner(signer) // every press goes out signed as the notifier's (auth on)
	var sw slacknotify.FailoverSwitch
	if cfg.Failover.Enabled {
		bucket := cfg.Failover.KVBucket
		if bucket == "" {
			bucket = actuator.DefaultKVBucket
		}
		st, err := actuator.OpenState(ctx, js, bucket)
		if err != nil {
			return fmt.Errorf("notifier: failover switch: %w", err)
		}
		sw = failoverSwitch{st}
	}
	if sm.AppToken != "" {
		s, err := slacknotify.NewSocketMode(slacknotify.SocketModeOptions{
			AppToken: sm.AppToken, BotToken: cfg.Slack.Token, APIURL: cfg.Slack.APIURL,
			Interactions: h, Failover: sw, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
		log.Info("slack socket mode on: buttons and /mciv over an outbound WebSocket", "allowed_users", len(users))
		start("slack-socket-mode", s.Run)
	}
	if ic.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", ic.Listen)
	if err != nil {
		return fmt.Errorf("notifier: slack interactivity listen %s: %w", ic.Listen, err)
	}
	path := ic.Path
	if path == "" {
		path = "/slack/interactivity"
	}
	mux := http.NewServeMux()
	mux.Handle(path, h)
	mux.Handle("/slack/commands", h.CommandHandler(sw))
	srv := httpserver.New(mux, httpserver.Limits{})
	log.Info("slack interactivity endpoint", "url", "http://"+ln.Addr().String()+path)
	start("slack-interactivity", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("slack interactivity: %w", err)
		}
		return nil
	})
	return nil
}

// failoverSwitch is the actuator's pause as /mciv sees it.
type failoverSwitch struct{ st *actuator.Store }

func (f failoverSwitch) Paused(ctx context.Context) (bool, string, string, error) {
	p, err := f.st.Paused(ctx)
	return p.Paused, p.By, p.Reason, err
}

func (f failoverSwitch) Pause(ctx context.Context, by, reason string) error {
	return f.st.SetPaused(ctx, actuator.PauseInfo{Paused: true, By: by, Reason: reason, At: time.Now().UTC()})
}

// startVoice builds the voice integration: critical alerts spoken into a
// clip file (its path on the console) and uploaded into the Slack thread.
func startVoice(ctx context.Context, cfg config.Config, out io.Writer, threads slacknotify.ThreadPoster,
	reg prometheus.Registerer, log *slog.Logger, start func(string, func(context.Context) error)) (notifier.Notifier, error) {
	setup := voiceSetup{DataDir: cfg.DataDir, Getenv: os.Getenv, Out: out, Registerer: reg, Logger: log.With("integration", "voice")}
	if threads != nil {
		setup.Thread = threads
	}
	v, closer, err := buildVoice(ctx, cfg.Voice, setup)
	if err != nil {
		return nil, err
	}
	start("voice", func(ctx context.Context) error {
		<-ctx.Done()
		return closer.Close()
	})
	return v, nil
}

// voiceSetup is what buildVoice needs besides the voice section.
type voiceSetup struct {
	// DataDir is mciv's data_dir: clips go to <DataDir>/voice/clips (unless
	// voice.dir), the cache to <DataDir>/voice/cache.
	DataDir string
	// Getenv reads GOOGLE_APPLICATION_CREDENTIALS for the default engine
	// order; nil means no environment.
	Getenv func(string) string
	// Thread receives the clips (the Slack integration); nil uploads none.
	Thread voice.ThreadPoster
	// Out is the console; nil prints nothing.
	Out io.Writer
	// Registerer receives the tts chain's metrics; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// buildVoice builds the voice integration the voice section describes:
// the engine chain and the Notifier. Close the returned io.Closer (the
// chain) when done.
func buildVoice(ctx context.Context, c voice.Config, s voiceSetup) (*voice.Notifier, io.Closer, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	names, err := c.EngineNames(s.Getenv)
	if err != nil {
		return nil, nil, err
	}
	format, err := c.ClipFormat()
	if err != nil {
		return nil, nil, err
	}
	ecfg := c.EnginesConfig(s.DataDir)
	ecfg.Registerer = s.Registerer
	ecfg.Logger = s.Logger
	chain, err := engines.NewChain(ctx, names, ecfg)
	if err != nil {
		return nil, nil, fmt.Errorf("voice: %w", err)
	}
	n, err := voice.New(voice.Options{
		Engine:     chain,
		Dir:        c.ClipDir(s.DataDir),
		Severities: c.SeverityList(),
		Format:     format,
		Voice:      c.Voice,
		Language:   c.Language,
		Rate:       c.Rate,
		Timeout:    c.Timeout,
		MaxAge:     c.MaxAge,
		Thread:     s.Thread,
		Out:        s.Out,
		Logger:     s.Logger,
	})
	if err != nil {
		chain.Close()
		return nil, nil, err
	}
	return n, chain, nil
}
