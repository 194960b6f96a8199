// Package patroni is the failover.Driver for Patroni's REST API.
//
// It reads GET /cluster, refuses locally what must not be done
// (failover.Precheck: pause, nofailover, a stale view of the leader, a
// lagging candidate), sends exactly one POST /switchover (or POST /failover
// when the caller states the primary is dead) with a Content-Length and the
// caller's fencing token, and confirms the outcome by polling GET /cluster.
// A POST is never retried: not by this package, and not by net/http (each
// POST uses a fresh connection and a body that cannot be replayed).
//
// Patroni's answers map to failover's error kinds: 412 to ErrPrecondition
// (refined to ErrLeaderMismatch or ErrCandidateIneligible from its text),
// 401/403 to ErrAuth, 503 "failed" to ErrFailed, 503 "status unknown", a
// timeout or a lost connection after sending to ErrUnknownOutcome (then
// resolved by polling when possible), other 4xx to ErrRejected.
package patroni

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/internal/flow"
	"github.com/mciv/mciv/failover/internal/oneshot"
)

// Headers sent with every action. Patroni ignores them; they reach its
// access log and any proxy in front of it, and tie the request to the
// actuator lease revision in the audit trail.
const (
	HeaderFencingToken = "X-Mciv-Fencing-Token"
	HeaderReason       = "X-Mciv-Reason"
)

// name is the driver's name in results and errors.
const name = "patroni"

// Driver drives one Patroni cluster. It is safe for concurrent use.
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
	cfg.Endpoints = append([]string(nil), cfg.Endpoints...)
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.TLS.Client()
	if err != nil {
		return nil, fmt.Errorf("patroni: %w", err)
	}
	get, post := oneshot.Clients(tlsCfg)
	return &Driver{cfg: cfg, get: get, post: post, log: cfg.Logger.With("driver", name, "cluster", cfg.Cluster)}, nil
}

// Name returns "patroni".
func (d *Driver) Name() string { return name }

// Topology reads GET /cluster from the first endpoint that answers.
func (d *Driver) Topology(ctx context.Context) (failover.Topology, error) {
	t, _, err := d.topology(ctx)
	return t, err
}

// topology returns the topology and the base URL that served it.
func (d *Driver) topology(ctx context.Context) (failover.Topology, string, error) {
	var errs []error
	kind := failover.ErrUnavailable
	for _, base := range d.cfg.Endpoints {
		t, err := d.cluster(ctx, base)
		if err == nil {
			return t, base, nil
		}
		if errors.Is(err, failover.ErrAuth) {
			kind = failover.ErrAuth
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return failover.Topology{}, "", &failover.Error{Driver: name, Op: "topology", Kind: kind, Err: errors.Join(errs...)}
}

// cluster reads GET base/cluster.
func (d *Driver) cluster(ctx context.Context, base string) (failover.Topology, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.TopologyTimeout)
	defer cancel()
	url := base + "/cluster"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return failover.Topology{}, fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	d.auth(req)
	resp, err := d.get.Do(req)
	if err != nil {
		if oneshot.IsTimeout(err) {
			err = fmt.Errorf("%w: %w", failover.ErrTimeout, err)
		}
		return failover.Topology{}, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, oneshot.MaxBody))
	if err != nil {
		return failover.Topology{}, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return failover.Topology{}, fmt.Errorf("GET %s: %w: status %d: %s", url, failover.ErrAuth, resp.StatusCode, oneshot.Trim(body))
	case resp.StatusCode != http.StatusOK:
		return failover.Topology{}, fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, oneshot.Trim(body))
	}
	t, err := parseCluster(body)
	if err != nil {
		return failover.Topology{}, fmt.Errorf("GET %s: %w", url, err)
	}
	if t.Cluster == "" {
		t.Cluster = d.cfg.Cluster
	}
	t.Source = base
	t.ReadAt = time.Now()
	return t, nil
}

// Switchover asks Patroni to hand leadership from req.From to req.To.
//
// Before sending, it refuses (ErrPrecondition and its refinements) when
// the cluster is paused, req.From is not the leader, or req.To is not an
// eligible, running replica within req.MaxLagBytes. It then sends one POST
// /switchover and confirms through GET /cluster that req.To leads and runs.
func (d *Driver) Switchover(ctx context.Context, req failover.Request) (failover.Result, error) {
	return d.act(ctx, failover.ActionSwitchover, req)
}

// Failover asks Patroni to promote req.To when the primary is dead.
//
// It refuses unless req.PrimaryConfirmedDead, when the cluster is paused,
// when a leader other than req.From holds the lock (Patroni already
// acted), when req.From still holds the lock and reports running (use
// Switchover), or when req.To is not eligible. Otherwise it sends one POST
// /failover with only the candidate, and confirms as Switchover does.
func (d *Driver) Failover(ctx context.Context, req failover.Request) (failover.Result, error) {
	return d.act(ctx, failover.ActionFailover, req)
}

func (d *Driver) act(ctx context.Context, action failover.Action, req failover.Request) (failover.Result, error) {
	// The topology endpoint of this call, and the POST target derived from
	// the candidate's api_url.
	var src string
	f := flow.Flow{
		Driver: name, Cluster: d.cfg.Cluster, Tokens: &d.tokens, Log: d.log,
		ConfirmTimeout: d.cfg.ConfirmTimeout, PollInterval: d.cfg.PollInterval,
		Topology: func(ctx context.Context) (failover.Topology, error) {
			t, base, err := d.topology(ctx)
			if src == "" {
				src = base
			}
			return t, err
		},
	}
	return f.Act(ctx, action, req, func(ctx context.Context, before failover.Topology) flow.Answer {
		target := src
		if cand, _ := before.Member(req.To); !d.cfg.PostToEndpoint && cand.APIURL != "" {
			if b, err := apiBase(cand.APIURL); err == nil {
				target = b
			} else {
				d.log.Warn("candidate api_url unusable; posting to the topology endpoint", "err", err, "endpoint", src)
			}
		}
		body := map[string]string{"candidate": req.To}
		if action == failover.ActionSwitchover {
			body["leader"] = req.From
		}
		return d.send(ctx, target, action, body, req)
	})
}

// classify maps a non-200 answer to POST /switchover or /failover.
func classify(status int, msg string) error {
	switch {
	case status == http.StatusPreconditionFailed:
		return classify412(msg)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return failover.ErrAuth
	case status == http.StatusServiceUnavailable && !strings.Contains(strings.ToLower(msg), "status unknown"):
		// "Switchover failed", "failed to write failover key into DCS".
		return failover.ErrFailed
	case status >= 400 && status < 500:
		return failover.ErrRejected
	default:
		return failover.ErrUnknownOutcome
	}
}

// classify412 refines Patroni's 412 texts ("leader name does not match",
// "candidate does not exists", "... no good candidates have been found").
func classify412(msg string) error {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "leader name does not match"):
		return failover.ErrLeaderMismatch
	case strings.Contains(m, "candidate"), strings.Contains(m, "sync_standby"), strings.Contains(m, "members except leader"):
		return failover.ErrCandidateIneligible
	default:
		return failover.ErrPrecondition
	}
}

// send makes exactly one POST and maps the answer.
func (d *Driver) send(ctx context.Context, base string, action failover.Action, body map[string]string,
	r failover.Request) flow.Answer {
	buf, err := json.Marshal(body)
	if err != nil {
		return flow.Answer{Kind: failover.ErrInvalidRequest, Err: fmt.Errorf("encode body: %w", err)}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderFencingToken, strconv.FormatUint(r.FencingToken, 10))
	if reason := oneshot.HeaderSafe(r.Reason); reason != "" {
		h.Set(HeaderReason, reason)
	}
	if d.cfg.Username != "" || d.cfg.Password != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(d.cfg.Username+":"+d.cfg.Password)))
	}
	d.log.Info("patroni POST", "url", base+"/"+string(action), "fencing_token", r.FencingToken)
	status, b, sent, err := oneshot.Post(ctx, d.post, base+"/"+string(action), buf, h, d.cfg.RequestTimeout)
	switch {
	case err != nil && !sent:
		return flow.Answer{Kind: failover.ErrUnavailable, Err: err}
	case err != nil:
		if oneshot.IsTimeout(err) {
			err = fmt.Errorf("%w: %w", failover.ErrTimeout, err)
		}
		return flow.Answer{Kind: failover.ErrUnknownOutcome, Sent: true, Err: err}
	}
	msg := oneshot.Trim(b)
	a := flow.Answer{Sent: true, Status: status, Message: msg}
	if status != http.StatusOK {
		a.Kind = classify(status, msg)
	}
	return a
}

// Post sends one raw POST /switchover or /failover to base with body, with
// no local check and no confirmation, and maps the answer like the Driver
// does (nil only for 200). For tests and operator tools that must see
// Patroni's own verdict.
func (d *Driver) Post(ctx context.Context, base string, action failover.Action, body map[string]string,
	fencingToken uint64) (string, error) {
	a := d.send(ctx, strings.TrimRight(base, "/"), action, body, failover.Request{FencingToken: fencingToken})
	if a.Kind == nil {
		return a.Message, nil
	}
	return a.Message, &failover.Error{Driver: name, Op: string(action), Kind: a.Kind, Status: a.Status,
		Message: a.Message, Sent: a.Sent, Err: a.Err}
}

func (d *Driver) auth(req *http.Request) {
	if d.cfg.Username != "" || d.cfg.Password != "" {
		req.SetBasicAuth(d.cfg.Username, d.cfg.Password)
	}
}
