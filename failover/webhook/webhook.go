// Package webhook is a failover.Driver that hands the action to an HTTP
// endpoint: one POST of a JSON Payload per action, never retried.
//
// The receiver answers:
//
//	200, 201, 204  done; an optional JSON body {"new_leader": "...", "detail": "..."}
//	202            accepted, still in progress (outcome unknown until confirmed)
//	409, 412, 423  refused, nothing done (ErrPrecondition)
//	401, 403       ErrAuth
//	other 4xx      ErrRejected
//	5xx            ErrUnknownOutcome, unless the JSON body says {"outcome": "failed"} (ErrFailed)
//
// With a TopologyURL (GET, answering a failover.Topology as JSON) the
// driver prechecks like the Patroni driver and confirms every outcome by
// polling it; without one, the receiver's answer is the outcome.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/internal/flow"
	"github.com/mciv/mciv/failover/internal/oneshot"
)

// Headers sent with every action.
const (
	HeaderFencingToken = "X-Mciv-Fencing-Token"
	// HeaderActionID is "<cluster>/<action>/<fencing token>", for receivers
	// that deduplicate.
	HeaderActionID = "X-Mciv-Action-Id"
)

// PayloadVersion is the version of Payload sent.
const PayloadVersion = 1

// Payload is the JSON body of the POST.
type Payload struct {
	Version int             `json:"version"`
	Action  failover.Action `json:"action"`
	failover.Request
	// Topology is what the driver read before sending (absent without a
	// TopologyURL).
	Topology *failover.Topology `json:"topology,omitempty"`
	SentAt   time.Time          `json:"sent_at"`
}

// Response is the optional JSON body of the receiver's answer.
type Response struct {
	NewLeader string `json:"new_leader,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// Outcome "failed" on a 5xx means the receiver is sure nothing moved.
	Outcome string `json:"outcome,omitempty"`
}

// Defaults.
const (
	DefaultRequestTimeout  = 45 * time.Second
	DefaultTopologyTimeout = 5 * time.Second
	DefaultConfirmTimeout  = 60 * time.Second
	DefaultPollInterval    = 500 * time.Millisecond
)

// Config configures a webhook Driver.
type Config struct {
	// Name overrides the driver name in results (default "webhook").
	Name string
	// Cluster refuses requests for another cluster; empty accepts any.
	Cluster string
	// URL receives the POST.
	URL string
	// TopologyURL, optional, answers GET with a failover.Topology.
	TopologyURL string
	// Header is added to every request (e.g. Authorization). Values are
	// never logged.
	Header http.Header
	TLS    failover.TLSConfig
	// RequestTimeout bounds the POST; keep it long enough for the receiver
	// to finish (default DefaultRequestTimeout).
	RequestTimeout  time.Duration
	TopologyTimeout time.Duration
	ConfirmTimeout  time.Duration
	PollInterval    time.Duration
	Logger          *slog.Logger
}

// LogValue keeps header values out of logs.
func (c Config) LogValue() slog.Value {
	keys := make([]string, 0, len(c.Header))
	for k := range c.Header {
		keys = append(keys, k)
	}
	return slog.GroupValue(slog.String("url", c.URL), slog.String("topology_url", c.TopologyURL),
		slog.Any("header_keys", keys), slog.Duration("request_timeout", c.RequestTimeout))
}

// Driver posts actions to a webhook. It is safe for concurrent use.
type Driver struct {
	cfg    Config
	get    *http.Client
	post   *http.Client
	log    *slog.Logger
	tokens failover.TokenGuard
}

var _ failover.Driver = (*Driver)(nil)

// New returns a Driver for cfg.
func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" {
		cfg.Name = "webhook"
	}
	check := func(u string) error {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("webhook: URL %q: want http(s)://host/path", u)
		}
		return nil
	}
	if err := check(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.TopologyURL != "" {
		if err := check(cfg.TopologyURL); err != nil {
			return nil, err
		}
	}
	cfg.RequestTimeout = orDefault(cfg.RequestTimeout, DefaultRequestTimeout)
	cfg.TopologyTimeout = orDefault(cfg.TopologyTimeout, DefaultTopologyTimeout)
	cfg.ConfirmTimeout = orDefault(cfg.ConfirmTimeout, DefaultConfirmTimeout)
	cfg.PollInterval = orDefault(cfg.PollInterval, DefaultPollInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tlsCfg, err := cfg.TLS.Client()
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	get, post := oneshot.Clients(tlsCfg)
	return &Driver{cfg: cfg, get: get, post: post,
		log: cfg.Logger.With("driver", cfg.Name, "cluster", cfg.Cluster)}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Name returns the configured name ("webhook").
func (d *Driver) Name() string { return d.cfg.Name }

// Topology GETs TopologyURL; without one it returns an error wrapping
// errors.ErrUnsupported.
func (d *Driver) Topology(ctx context.Context) (failover.Topology, error) {
	if d.cfg.TopologyURL == "" {
		return failover.Topology{}, &failover.Error{Driver: d.cfg.Name, Op: "topology", Kind: failover.ErrUnavailable,
			Err: fmt.Errorf("no topology_url configured: %w", errors.ErrUnsupported)}
	}
	t, err := d.readTopology(ctx)
	if err != nil {
		kind := failover.ErrUnavailable
		if errors.Is(err, failover.ErrAuth) {
			kind = failover.ErrAuth
		}
		return failover.Topology{}, &failover.Error{Driver: d.cfg.Name, Op: "topology", Kind: kind, Err: err}
	}
	return t, nil
}

func (d *Driver) readTopology(ctx context.Context) (failover.Topology, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.TopologyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.cfg.TopologyURL, nil)
	if err != nil {
		return failover.Topology{}, fmt.Errorf("GET %s: %w", d.cfg.TopologyURL, err)
	}
	for k, vs := range d.cfg.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.get.Do(req)
	if err != nil {
		if oneshot.IsTimeout(err) {
			err = fmt.Errorf("%w: %w", failover.ErrTimeout, err)
		}
		return failover.Topology{}, fmt.Errorf("GET %s: %w", d.cfg.TopologyURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, oneshot.MaxBody))
	if err != nil {
		return failover.Topology{}, fmt.Errorf("GET %s: read body: %w", d.cfg.TopologyURL, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return failover.Topology{}, fmt.Errorf("GET %s: %w: status %d", d.cfg.TopologyURL, failover.ErrAuth, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return failover.Topology{}, fmt.Errorf("GET %s: status %d: %s", d.cfg.TopologyURL, resp.StatusCode, oneshot.Trim(body))
	}
	var t failover.Topology
	if err := json.Unmarshal(body, &t); err != nil {
		return failover.Topology{}, fmt.Errorf("GET %s: decode topology: %w", d.cfg.TopologyURL, err)
	}
	if t.Source == "" {
		t.Source = d.cfg.TopologyURL
	}
	t.ReadAt = time.Now()
	return t, nil
}

// Switchover posts a switchover from req.From to req.To.
func (d *Driver) Switchover(ctx context.Context, req failover.Request) (failover.Result, error) {
	return d.act(ctx, failover.ActionSwitchover, req)
}

// Failover posts a failover to req.To; it refuses without
// req.PrimaryConfirmedDead.
func (d *Driver) Failover(ctx context.Context, req failover.Request) (failover.Result, error) {
	return d.act(ctx, failover.ActionFailover, req)
}

func (d *Driver) act(ctx context.Context, action failover.Action, req failover.Request) (failover.Result, error) {
	f := flow.Flow{Driver: d.cfg.Name, Cluster: d.cfg.Cluster, Tokens: &d.tokens, Log: d.log,
		ConfirmTimeout: d.cfg.ConfirmTimeout, PollInterval: d.cfg.PollInterval}
	if d.cfg.TopologyURL != "" {
		f.Topology = d.Topology
	}
	return f.Act(ctx, action, req, func(ctx context.Context, before failover.Topology) flow.Answer {
		p := Payload{Version: PayloadVersion, Action: action, Request: req, SentAt: time.Now().UTC()}
		if f.Topology != nil {
			p.Topology = &before
		}
		return d.send(ctx, action, p)
	})
}

func (d *Driver) send(ctx context.Context, action failover.Action, p Payload) flow.Answer {
	buf, err := json.Marshal(p)
	if err != nil {
		return flow.Answer{Kind: failover.ErrInvalidRequest, Err: fmt.Errorf("encode payload: %w", err)}
	}
	h := http.Header{}
	for k, vs := range d.cfg.Header {
		h[http.CanonicalHeaderKey(k)] = vs
	}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderFencingToken, strconv.FormatUint(p.FencingToken, 10))
	h.Set(HeaderActionID, fmt.Sprintf("%s/%s/%d", p.Cluster, action, p.FencingToken))
	status, body, sent, err := oneshot.Post(ctx, d.post, d.cfg.URL, buf, h, d.cfg.RequestTimeout)
	switch {
	case err != nil && !sent:
		return flow.Answer{Kind: failover.ErrUnavailable, Err: err}
	case err != nil:
		if oneshot.IsTimeout(err) {
			err = fmt.Errorf("%w: %w", failover.ErrTimeout, err)
		}
		return flow.Answer{Kind: failover.ErrUnknownOutcome, Sent: true, Err: err}
	}
	var r Response
	msg := oneshot.Trim(body)
	if json.Unmarshal(body, &r) == nil && r.Detail != "" {
		msg = r.Detail
	}
	a := flow.Answer{Sent: true, Status: status, Message: msg, NewLeader: r.NewLeader}
	switch {
	case status == http.StatusOK || status == http.StatusCreated || status == http.StatusNoContent:
	case status == http.StatusAccepted:
		a.Kind = failover.ErrUnknownOutcome
		a.Err = errors.New("accepted, still in progress")
	case status == http.StatusConflict || status == http.StatusPreconditionFailed || status == http.StatusLocked:
		a.Kind = failover.ErrPrecondition
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		a.Kind = failover.ErrAuth
	case status >= 400 && status < 500:
		a.Kind = failover.ErrRejected
	case status >= 500 && r.Outcome == string(failover.OutcomeFailed):
		a.Kind = failover.ErrFailed
	default:
		a.Kind = failover.ErrUnknownOutcome
	}
	return a
}
