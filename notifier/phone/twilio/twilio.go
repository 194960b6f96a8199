// Package twilio is the Twilio phone provider, on the official client
// library (github.com/twilio/twilio-go): a call is created with inline
// TwiML that plays the alert (a clip URL with <Play>, or the text with
// <Say>) inside a <Gather numDigits="1"> whose action is our callback
// endpoint, and the call's progress comes back as status callbacks.
//
// [Provider.Handler] is that endpoint. Every request must carry a valid
// X-Twilio-Signature (HMAC-SHA1 of the full URL and the sorted POST
// parameters, keyed with the auth token); anything else is refused with
// 403 and reaches nobody.
package twilio

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	twilioapi "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/mciv/mciv/notifier/phone"
)

// Name is the provider's name.
const Name = "twilio"

// Callback paths under Config.PublicURL.
const (
	GatherPath = "/twilio/gather"
	StatusPath = "/twilio/status"
)

// SignatureHeader carries Twilio's request signature.
const SignatureHeader = "X-Twilio-Signature"

// maxCallbackBody bounds a callback's body.
const maxCallbackBody = 64 << 10

// Options configures a Provider.
type Options struct {
	Config
	// HTTPClient carries the REST requests; nil uses one with
	// Config.Timeout. Tests pass internal/twiliotest's, which reaches a
	// fake Twilio.
	HTTPClient *http.Client
	// Logger; nil discards.
	Logger *slog.Logger
}

// Provider places calls with Twilio. It is safe for concurrent use.
type Provider struct {
	cfg       Config
	rest      *twilioapi.RestClient
	validator client.RequestValidator
	log       *slog.Logger
}

// New returns a Provider; cfg must be Enabled.
func New(opts Options) (*Provider, error) {
	cfg := opts.Config
	if !cfg.Enabled() {
		return nil, errors.New("twilio: account_sid, auth_token and from are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = DefaultRingTimeout
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{
			Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	c := &client.Client{Credentials: client.NewCredentials(cfg.AccountSID, cfg.AuthToken), HTTPClient: hc}
	c.SetAccountSid(cfg.AccountSID)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{
		cfg:       cfg,
		rest:      twilioapi.NewRestClientWithParams(twilioapi.ClientParams{Client: c}),
		validator: client.NewRequestValidator(cfg.AuthToken),
		log:       log,
	}, nil
}

// Name returns "twilio".
func (p *Provider) Name() string { return Name }

// GatherURL is where Twilio posts the key pressed.
func (p *Provider) GatherURL() string { return p.cfg.PublicURL + GatherPath }

// StatusURL is where Twilio posts the call's progress.
func (p *Provider) StatusURL() string { return p.cfg.PublicURL + StatusPath }

// Call places a call whose TwiML speaks req and gathers a key. Empty
// callback URLs in req default to GatherURL and StatusURL.
func (p *Provider) Call(ctx context.Context, req phone.CallRequest) (phone.CallID, error) {
	if req.To == "" {
		return "", errors.New("twilio: call: no number to call")
	}
	if req.Gather != nil && req.Gather.ActionURL == "" {
		g := *req.Gather
		g.ActionURL = p.GatherURL()
		req.Gather = &g
	}
	if req.StatusCallbackURL == "" && p.cfg.PublicURL != "" {
		req.StatusCallbackURL = p.StatusURL()
	}
	twiml, err := TwiML(req, p.cfg.SayVoice, p.cfg.Language)
	if err != nil {
		return "", err
	}
	params := &api.CreateCallParams{}
	params.SetTo(req.To).SetFrom(p.cfg.From).SetTwiml(twiml).SetTimeout(int(p.cfg.RingTimeout / time.Second))
	if req.StatusCallbackURL != "" {
		params.SetStatusCallback(req.StatusCallbackURL).
			SetStatusCallbackMethod(http.MethodPost).
			SetStatusCallbackEvent([]string{"initiated", "ringing", "answered", "completed"})
	}
	// twilio-go takes no context: run the request aside and stop waiting
	// when ctx ends (the HTTP client's timeout ends the request itself).
	type result struct {
		call *api.ApiV2010Call
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := p.rest.Api.CreateCall(params)
		done <- result{c, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return "", fmt.Errorf("twilio: call %s: %w", req.To, ctx.Err())
	}
	if r.err != nil {
		return "", fmt.Errorf("twilio: call %s: %w", req.To, r.err)
	}
	if r.call == nil || r.call.Sid == nil || *r.call.Sid == "" {
		return "", fmt.Errorf("twilio: call %s: the response has no call sid", req.To)
	}
	status := ""
	if r.call.Status != nil {
		status = *r.call.Status
	}
	p.log.Info("call placed", "provider", Name, "to", req.To, "call", *r.call.Sid, "status", status)
	return phone.CallID(*r.call.Sid), nil
}

// TwiML elements (only what we send).
type (
	twimlResponse struct {
		XMLName xml.Name `xml:"Response"`
		Verbs   []any
	}
	twimlSay struct {
		XMLName  xml.Name `xml:"Say"`
		Voice    string   `xml:"voice,attr,omitempty"`
		Language string   `xml:"language,attr,omitempty"`
		Text     string   `xml:",chardata"`
	}
	twimlPlay struct {
		XMLName xml.Name `xml:"Play"`
		URL     string   `xml:",chardata"`
	}
	twimlGather struct {
		XMLName   xml.Name `xml:"Gather"`
		Input     string   `xml:"input,attr"`
		NumDigits int      `xml:"numDigits,attr"`
		Action    string   `xml:"action,attr"`
		Method    string   `xml:"method,attr"`
		Timeout   int      `xml:"timeout,attr"`
		Verbs     []any
	}
	twimlHangup struct {
		XMLName xml.Name `xml:"Hangup"`
	}
)

// TwiML returns the document of a call: the alert (Play or Say), inside a
// one-digit Gather when req.Gather is set, then what to say without a key.
func TwiML(req phone.CallRequest, voice, language string) (string, error) {
	var alert any
	switch {
	case req.AudioURL != "":
		alert = twimlPlay{URL: req.AudioURL}
	case strings.TrimSpace(req.Say) != "":
		alert = twimlSay{Voice: voice, Language: language, Text: req.Say}
	default:
		return "", errors.New("twilio: a call needs an audio URL or text to say")
	}
	resp := twimlResponse{}
	if g := req.Gather; g != nil {
		timeout := g.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		prompt, noInput := g.Prompt, g.NoInput
		if prompt == "" {
			prompt = phone.DefaultPrompt
		}
		if noInput == "" {
			noInput = phone.DefaultNoInput
		}
		resp.Verbs = append(resp.Verbs,
			twimlGather{
				Input: "dtmf", NumDigits: 1, Action: g.ActionURL, Method: http.MethodPost,
				Timeout: int(timeout / time.Second),
				Verbs:   []any{alert, twimlSay{Voice: voice, Language: language, Text: prompt}},
			},
			twimlSay{Voice: voice, Language: language, Text: noInput})
	} else {
		resp.Verbs = append(resp.Verbs, alert)
	}
	return marshalTwiML(resp)
}

// replyTwiML says text and hangs up.
func replyTwiML(text, voice, language string) (string, error) {
	resp := twimlResponse{}
	if text != "" {
		resp.Verbs = append(resp.Verbs, twimlSay{Voice: voice, Language: language, Text: text})
	}
	resp.Verbs = append(resp.Verbs, twimlHangup{})
	return marshalTwiML(resp)
}

func marshalTwiML(resp twimlResponse) (string, error) {
	b, err := xml.Marshal(resp)
	if err != nil {
		return "", fmt.Errorf("twilio: twiml: %w", err)
	}
	return xml.Header + string(b), nil
}

// Handler returns the callback endpoint: POST GatherPath and StatusPath,
// each verified with Twilio's signature, turned into a phone.Event for h.
func (p *Provider) Handler(h phone.EventHandler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+GatherPath, func(w http.ResponseWriter, r *http.Request) {
		form, ok := p.verify(w, r)
		if !ok {
			return
		}
		ev := phone.Event{
			Kind:   phone.EventDigits,
			CallID: phone.CallID(form.Get("CallSid")),
			Status: phone.Status(form.Get("CallStatus")),
			Digits: form.Get("Digits"),
			To:     form.Get("To"),
		}
		reply := h.HandleCallEvent(r.Context(), ev)
		doc, err := replyTwiML(reply.Say, p.cfg.SayVoice, p.cfg.Language)
		if err != nil {
			http.Error(w, "twiml", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write([]byte(doc))
	})
	mux.HandleFunc("POST "+StatusPath, func(w http.ResponseWriter, r *http.Request) {
		form, ok := p.verify(w, r)
		if !ok {
			return
		}
		ev := phone.Event{
			Kind:   phone.EventStatus,
			CallID: phone.CallID(form.Get("CallSid")),
			Status: phone.Status(form.Get("CallStatus")),
			To:     form.Get("To"),
		}
		if d, err := strconv.Atoi(form.Get("CallDuration")); err == nil {
			ev.Duration = time.Duration(d) * time.Second
		}
		h.HandleCallEvent(r.Context(), ev)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// verify parses the POST form and checks the request's signature against
// the public URL it was sent to. It answers 403 and returns false when the
// signature is missing or wrong, or the request is for another account.
func (p *Provider) verify(w http.ResponseWriter, r *http.Request) (form url.Values, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxCallbackBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return nil, false
	}
	params := make(map[string]string, len(r.PostForm))
	for k, v := range r.PostForm {
		params[k] = v[0]
	}
	full := p.requestURL(r)
	sig := r.Header.Get(SignatureHeader)
	if sig == "" || !p.validator.Validate(full, params, sig) {
		p.log.Warn("refused a callback with a wrong Twilio signature", "path", r.URL.Path, "remote", r.RemoteAddr, "signed", sig != "")
		http.Error(w, "invalid signature", http.StatusForbidden)
		return nil, false
	}
	if sid := r.PostForm.Get("AccountSid"); sid != "" && sid != p.cfg.AccountSID {
		p.log.Warn("refused a callback for another Twilio account", "path", r.URL.Path)
		http.Error(w, "wrong account", http.StatusForbidden)
		return nil, false
	}
	return r.PostForm, true
}

// requestURL is the URL Twilio signed: the configured public URL's scheme,
// host and prefix with the request's path and query, or, without a public
// URL, what the request itself says.
func (p *Provider) requestURL(r *http.Request) string {
	if p.cfg.PublicURL != "" {
		return p.cfg.PublicURL + r.URL.RequestURI()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}
