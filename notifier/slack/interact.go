package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	slackgo "github.com/slack-go/slack"
)

// MaxRequestAge is how far a request's timestamp may be from now: older
// (or future) requests are refused as replays.
const MaxRequestAge = 5 * time.Minute

// InteractivityConfig configures the endpoint Slack posts button presses to
// (the app's Interactivity Request URL).
type InteractivityConfig struct {
	// Listen is host:port of the HTTP endpoint; empty disables it.
	Listen string `yaml:"listen"`
	// Path is the URL path; default /slack/interactivity.
	Path string `yaml:"path"`
	// SigningSecret is the app's signing secret (or MCIV_SLACK_SIGNING_SECRET).
	SigningSecret string `yaml:"signing_secret"`
}

// LogValue never shows the secret.
func (c InteractivityConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("listen", c.Listen), slog.String("path", c.Path), slog.Bool("signing_secret_set", c.SigningSecret != ""))
}

// Interactions handles Slack's interactivity requests: it verifies the
// request signature, and for a press of one of the group message's buttons
// publishes a wire.Ack to JetStream (MCIV_ACKS; the thread feed then updates
// the message and replies in its thread) and, for Silence, creates the
// silence at once.
type Interactions struct {
	secret   []byte
	js       jetstream.JetStream
	log      *nflog.Log
	silences *silence.Store
	now      func() time.Time
	logger   *slog.Logger
	users    map[string]bool // AllowUsers; nil: every user of the workspace
	signer   *auth.Signer    // SetSigner; nil: acks go out unsigned (auth off)
}

// SetSigner makes every ack the handler publishes carry the notifier's
// signature (auth on), so that the actuator, the analyzer and the
// escalation know the press came through this endpoint, which verified
// it was Slack's. Call it before serving.
func (h *Interactions) SetSigner(s *auth.Signer) { h.signer = s }

// publishAck signs and publishes ack on its cluster's subject, stored once
// per ack id.
func (h *Interactions) publishAck(ctx context.Context, ack *wire.Ack) error {
	data, err := wire.EncodeAck(ack)
	if err != nil {
		return err
	}
	m := &nats.Msg{Subject: wire.AckSubject(ack.Cluster), Data: data}
	if err := h.signer.Sign(m); err != nil {
		return err
	}
	_, err = h.js.PublishMsg(ctx, m, jetstream.WithMsgID(ack.ID))
	return err
}

// NewInteractions returns the handler; now may be nil (time.Now), logger nil.
func NewInteractions(signingSecret string, js jetstream.JetStream, log *nflog.Log, silences *silence.Store, now func() time.Time, logger *slog.Logger) (*Interactions, error) {
	if signingSecret == "" {
		return nil, errors.New("slack interactivity: a signing secret is required")
	}
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Interactions{secret: []byte(signingSecret), js: js, log: log, silences: silences, now: now, logger: logger.With("part", "slack-interactivity")}, nil
}

// Verify checks Slack's v0 signature of body: the timestamp header within
// MaxRequestAge of now, and X-Slack-Signature equal (in constant time) to
// v0=hex(HMAC-SHA256(secret, "v0:"+timestamp+":"+body)).
func (h *Interactions) Verify(header http.Header, body []byte) error {
	tsHeader := header.Get("X-Slack-Request-Timestamp")
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return errors.New("missing or bad X-Slack-Request-Timestamp")
	}
	if age := h.now().Sub(time.Unix(ts, 0)); age > MaxRequestAge || age < -MaxRequestAge {
		return fmt.Errorf("request timestamp %s away from now", age.Round(time.Second))
	}
	sig, ok := strings.CutPrefix(header.Get("X-Slack-Signature"), "v0=")
	if !ok {
		return errors.New("missing or unsupported X-Slack-Signature")
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return errors.New("bad X-Slack-Signature")
	}
	mac := hmac.New(sha256.New, h.secret)
	fmt.Fprintf(mac, "v0:%s:", tsHeader)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// verifiedBody reads a POST from Slack (at most 1 MiB) and checks its
// signature; on any failure it has answered w and returns ok false. what
// names the request in the refusal's log line.
func (h *Interactions) verifiedBody(w http.ResponseWriter, r *http.Request, what string) (body []byte, ok bool) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return nil, false
	}
	if err := h.Verify(r.Header, body); err != nil {
		h.logger.Warn("refusing an unverified "+what, "remote", r.RemoteAddr, "reason", err)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

// ServeHTTP implements http.Handler.
func (h *Interactions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := h.verifiedBody(w, r, "interactivity request")
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var cb slackgo.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	if err := h.HandleCallback(r.Context(), &cb); err != nil && !errors.Is(err, errTold) {
		http.Error(w, "could not handle the action; try again", http.StatusInternalServerError)
		return
	}
	// A press that failed but whose presser was told why (tellUser) is
	// answered 200: Slack shows the message, not a generic error.
	w.WriteHeader(http.StatusOK)
}

// errTold marks an error of HandleCallback that the presser has been told
// about (an ephemeral message on the press's response_url).
var errTold = errors.New("the user was told")

// HandleCallback acts on an interaction whose origin has been verified (a
// signed HTTP request, or an envelope on the app's Socket Mode
// connection): every button of a block_actions payload pressed by an
// allowed user (see AllowUsers). Both transports call it, so the same
// rules apply to both. Other interaction types are ignored.
func (h *Interactions) HandleCallback(ctx context.Context, cb *slackgo.InteractionCallback) error {
	if cb.Type != slackgo.InteractionTypeBlockActions {
		return nil
	}
	if !h.allowed(cb.User.ID) {
		h.logger.Warn("ignoring a button pressed by a user who is not allowed to", "user", cb.User.ID)
		return nil
	}
	for _, act := range cb.ActionCallback.BlockActions {
		if err := h.press(ctx, cb, act); err != nil {
			h.logger.Error("button press not handled", "action", act.ActionID, "user", cb.User.ID, "err", err)
			if h.tellUser(ctx, cb, act.ActionID, err) {
				return errors.Join(errTold, err)
			}
			return err
		}
	}
	return nil
}

// press handles one button.
func (h *Interactions) press(ctx context.Context, cb *slackgo.InteractionCallback, act *slackgo.BlockAction) error {
	var (
		action wire.AckAction
		dur    time.Duration
	)
	if act.ActionID == ActionApprove {
		return h.approve(ctx, cb, act)
	}
	switch {
	case act.ActionID == ActionAcknowledge:
		action = wire.AckAcknowledge
	case act.ActionID == ActionResolve:
		action = wire.AckResolve
	case strings.HasPrefix(act.ActionID, ActionSilence):
		d, err := time.ParseDuration(strings.TrimPrefix(act.ActionID, ActionSilence))
		if err != nil || !slices.Contains(SilenceDurations, d) {
			return fmt.Errorf("unknown silence button %q", act.ActionID)
		}
		action, dur = wire.AckSilence, d
	default:
		h.logger.Debug("ignoring an unknown action", "action", act.ActionID)
		return nil
	}
	e, _, err := h.log.Get(ctx, act.Value)
	if err != nil {
		return err
	}
	if e == nil || len(e.Alerts) == 0 {
		h.logger.Warn("button pressed for an unknown alert group", "group", act.Value)
		return nil
	}
	primary := e.Sorted()[0]
	now := h.now()
	id := pressID(cb, act)
	ack := &wire.Ack{
		Fingerprint: primary.Fingerprint, Cluster: clusterOf(primary), Action: action,
		By: cb.User.ID, Via: wire.ViaSlack, At: now, ID: id,
	}
	if action == wire.AckSilence {
		ack.Until = now.Add(dur)
		if h.silences == nil {
			return errors.New("silences are not available")
		}
		ms := silenceMatchers(e, primary)
		if _, err := h.silences.Add(ctx, silence.Silence{
			ID: id, Matchers: ms, StartsAt: now, EndsAt: ack.Until,
			CreatedBy: "slack:" + cb.User.ID, Comment: "Silence " + silenceLabel(dur) + " button in Slack",
		}); err != nil {
			return err
		}
	}
	if err := h.publishAck(ctx, ack); err != nil {
		return fmt.Errorf("publish ack: %w", err)
	}
	h.logger.Info("button pressed", "action", action, "user", cb.User.ID, "group", act.Value, "ack_id", id)
	return nil
}

func clusterOf(a *wire.Alert) string {
	if c := a.Labels[notifier.LabelCluster]; c != "" && wire.ValidToken(c) == nil {
		return c
	}
	return "default"
}

// silenceMatchers selects the group: its group_by labels, or, with none,
// the labels of its first alert.
func silenceMatchers(e *nflog.Entry, primary *wire.Alert) labels.Matchers {
	ls := e.GroupLabels
	if len(ls) == 0 {
		ls = labels.Of(primary)
	}
	var ms labels.Matchers
	for _, k := range slices.Sorted(maps.Keys(ls)) {
		m, err := labels.New(k, labels.Equal, ls[k])
		if err == nil {
			ms = append(ms, m)
		}
	}
	return ms
}

// approve publishes the approval of a pending failover: the button's value
// names the alert and the request ("<fingerprint> <cluster> <nonce>") the
// actuator waits on; the actuator checks the approver and the nonce.
func (h *Interactions) approve(ctx context.Context, cb *slackgo.InteractionCallback, act *slackgo.BlockAction) error {
	fp, rest, ok := strings.Cut(act.Value, " ")
	cluster, nonce, _ := strings.Cut(rest, " ")
	if !ok || fp == "" || wire.ValidToken(cluster) != nil {
		return fmt.Errorf("approve button with a malformed value %q", act.Value)
	}
	// One id per user and request: a replayed press is stored once, and
	// an earlier press by someone else does not hide this one.
	id := pressID(cb, act)
	if nonce != "" {
		id = "approve-" + nonce + "-" + cb.User.ID
	}
	ack := &wire.Ack{
		Fingerprint: fp, Cluster: cluster, Action: wire.AckApprove,
		By: cb.User.ID, Via: wire.ViaSlack, At: h.now(), ID: id, Nonce: nonce,
	}
	if err := h.publishAck(ctx, ack); err != nil {
		return fmt.Errorf("publish approval: %w", err)
	}
	h.logger.Info("failover approved", "user", cb.User.ID, "fingerprint", fp, "cluster", cluster, "ack_id", ack.ID)
	return nil
}

// pressID is one id per button press: a retried delivery of the same press
// is stored once.
func pressID(cb *slackgo.InteractionCallback, act *slackgo.BlockAction) string {
	sum := sha256.Sum256([]byte(cb.TriggerID + "\x00" + act.ActionTs + "\x00" + cb.User.ID + "\x00" + act.ActionID + "\x00" + act.Value))
	return "slack-" + hex.EncodeToString(sum[:10])
}
