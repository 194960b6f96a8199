package escalation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/httpserver"
	"github.com/mciv/mciv/notifier/phone/twilio"
)

// ServiceOptions is what a notifier needs to run phone escalation with
// Twilio: the two configuration sections and the process's plumbing.
type ServiceOptions struct {
	OnCall Config
	Twilio twilio.Config
	// JS stores escalations (KV bucket MCIV_ESCALATIONS), consumes
	// MCIV_ACKS and publishes phone acknowledgements there.
	JS jetstream.JetStream
	// Cluster is the Ack subject's cluster for alerts without the label.
	Cluster string
	// Thread receives the call reports; nil posts nothing.
	Thread ThreadPoster
	// Clips, with ClipsHandler serving them under the same public URL,
	// makes calls play our own voice; nil lets Twilio say the text.
	Clips        Clips
	ClipsHandler http.Handler
	// TickEvery is how often due steps are looked for; default 10s.
	TickEvery time.Duration
	// AckDurable names the MCIV_ACKS consumer; default DefaultAckDurable.
	AckDurable string
	// HTTPClient for Twilio's REST API; nil is the default (tests pass
	// internal/twiliotest's).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Signer signs the phone acknowledgements with the notifier's
	// credential (auth on); nil publishes them unsigned.
	Signer *auth.Signer
	// AckChecker and AcksRefused: see Options.
	AckChecker  *auth.AckChecker
	AcksRefused *prometheus.CounterVec
}

// Service is phone escalation wired up: the Engine (give it to the
// dispatcher as an integration), the Twilio callback endpoint, the ticker
// and the Ack consumer.
type Service struct {
	engine   *Engine
	provider *twilio.Provider
	opts     ServiceOptions
	log      *slog.Logger
}

// NewService builds the Twilio provider, the KV store and the engine, and
// loads the escalations that were running.
func NewService(ctx context.Context, o ServiceOptions) (*Service, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !o.OnCall.Enabled() {
		return nil, errors.New("escalation: oncall needs people and policies")
	}
	if err := o.Twilio.Validate(); err != nil {
		return nil, err
	}
	if o.JS == nil {
		return nil, errors.New("escalation: no JetStream")
	}
	prov, err := twilio.New(twilio.Options{Config: o.Twilio, HTTPClient: o.HTTPClient, Logger: log})
	if err != nil {
		return nil, err
	}
	store, err := NewKVStore(ctx, o.JS, 0)
	if err != nil {
		return nil, err
	}
	eng, err := New(Options{
		Config: o.OnCall, Provider: prov, Store: store, Thread: o.Thread,
		Acks: JetStreamAcks{JS: o.JS, Signer: o.Signer}, Clips: o.Clips, Cluster: o.Cluster, Logger: log,
		AckChecker: o.AckChecker, AcksRefused: o.AcksRefused,
	})
	if err != nil {
		return nil, err
	}
	if err := eng.Load(ctx); err != nil {
		log.Warn("some stored escalations could not be read", "err", err)
	}
	return &Service{engine: eng, provider: prov, opts: o, log: log}, nil
}

// Engine is the escalation engine; it is a notifier.Notifier.
func (s *Service) Engine() *Engine { return s.engine }

// Handler serves Twilio's callbacks (and the clips, when configured).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	cb := s.provider.Handler(s.engine)
	mux.Handle("POST "+twilio.GatherPath, cb)
	mux.Handle("POST "+twilio.StatusPath, cb)
	if s.opts.ClipsHandler != nil {
		mux.Handle("GET /voice/clips/", s.opts.ClipsHandler)
	}
	return mux
}

// Run serves the callback endpoint on lis (nil: listen on
// Twilio.Listen), ticks and consumes MCIV_ACKS until ctx ends.
func (s *Service) Run(ctx context.Context, lis net.Listener) error {
	if lis == nil {
		addr := s.opts.Twilio.Listen
		if addr == "" {
			return errors.New("escalation: twilio.listen is required for the callback endpoint")
		}
		var err error
		if lis, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("escalation: callback endpoint: %w", err)
		}
	}
	srv := httpserver.New(s.Handler(), httpserver.Limits{})
	s.log.Info("phone escalation running", "callbacks", lis.Addr().String(), "twilio", s.opts.Twilio)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("escalation: callback endpoint: %w", err)
		}
	})
	wg.Go(func() { errs <- s.engine.Run(ctx, s.opts.TickEvery) })
	wg.Go(func() { errs <- s.engine.ConsumeAcks(ctx, s.opts.JS, s.opts.AckDurable) })
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}
