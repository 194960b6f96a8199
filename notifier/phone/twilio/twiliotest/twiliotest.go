// Package twiliotest is a fake Twilio for tests: an httptest server that
// speaks the part of Twilio's REST API that the real client library
// (github.com/twilio/twilio-go) uses to place calls, records every call,
// and plays Twilio's part afterwards by posting signed callbacks to the
// URLs a call's TwiML and parameters name: a key pressed in a <Gather>, a
// status change (ringing, no-answer, completed).
//
// twilio-go always talks to https://api.twilio.com; [Server.HTTPClient]
// returns an *http.Client whose transport sends requests for any
// *.twilio.com host to the fake instead, so the library is used unchanged.
package twiliotest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is one call the fake accepted.
type Call struct {
	SID            string
	To, From       string
	Twiml          string
	StatusCallback string
	StatusEvents   []string
	Timeout        string
	// Form is every parameter as posted.
	Form url.Values
}

// GatherAction returns the action URL of the call's <Gather>, or "".
func (c Call) GatherAction() string {
	var doc struct {
		Gathers []struct {
			Action string `xml:"action,attr"`
		} `xml:"Gather"`
	}
	if err := xml.Unmarshal([]byte(c.Twiml), &doc); err != nil || len(doc.Gathers) == 0 {
		return ""
	}
	return doc.Gathers[0].Action
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	AccountSID string
	AuthToken  string

	srv *httptest.Server

	mu    sync.Mutex
	calls []Call
	fail  *apiError
	seq   int
}

// apiError is Twilio's JSON error body.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// New starts a fake for the account sid whose auth token is token.
func New(sid, token string) *Server {
	s := &Server{AccountSID: sid, AuthToken: token}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Calls.json", s.createCall)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Code: 20404, Message: "The requested resource " + r.URL.Path + " was not found", Status: http.StatusNotFound})
	})
	s.srv = httptest.NewServer(mux)
	return s
}

// Start is New for a test: the server stops when the test ends.
func Start(tb testing.TB, sid, token string) *Server {
	tb.Helper()
	s := New(sid, token)
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// URL is the fake's base URL.
func (s *Server) URL() string { return s.srv.URL }

// HTTPClient returns a client that sends every request for a twilio.com
// host to the fake (give it to the Twilio provider).
func (s *Server) HTTPClient() *http.Client {
	target, _ := url.Parse(s.srv.URL)
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &rewrite{target: target, next: s.srv.Client().Transport},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// rewrite sends requests for *.twilio.com to target.
type rewrite struct {
	target *url.URL
	next   http.RoundTripper
}

// RoundTrip rewrites the request's scheme and host.
func (rw *rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	if h := r.URL.Hostname(); h != "twilio.com" && !strings.HasSuffix(h, ".twilio.com") {
		return nil, fmt.Errorf("twiliotest: refusing a request to %s, which is not Twilio", r.URL.Host)
	}
	r = r.Clone(r.Context())
	r.URL.Scheme = rw.target.Scheme
	r.URL.Host = rw.target.Host
	r.Host = rw.target.Host
	return rw.next.RoundTrip(r)
}

// FailCalls makes the following call requests fail with an HTTP status
// and Twilio error code (e.g. 400, 21211 "invalid To number"); status 0
// makes them succeed again.
func (s *Server) FailCalls(status, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		s.fail = nil
		return
	}
	s.fail = &apiError{Code: code, Message: message, Status: status}
}

// Calls returns the calls accepted so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// createCall is POST /2010-04-01/Accounts/{sid}/Calls.json.
func (s *Server) createCall(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.AccountSID || pass != s.AuthToken || r.PathValue("sid") != s.AccountSID {
		writeError(w, &apiError{Code: 20003, Message: "Authenticate", Status: http.StatusUnauthorized})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		writeError(w, &apiError{Code: 20001, Message: "Content-Type must be application/x-www-form-urlencoded, not " + ct, Status: http.StatusBadRequest})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, &apiError{Code: 20001, Message: err.Error(), Status: http.StatusBadRequest})
		return
	}
	f := r.PostForm
	switch {
	case f.Get("To") == "":
		writeError(w, &apiError{Code: 21201, Message: "No 'To' number is specified", Status: http.StatusBadRequest})
		return
	case f.Get("From") == "":
		writeError(w, &apiError{Code: 21213, Message: "No 'From' number is specified", Status: http.StatusBadRequest})
		return
	case f.Get("Url") == "" && f.Get("Twiml") == "" && f.Get("ApplicationSid") == "":
		writeError(w, &apiError{Code: 21205, Message: "Url parameter is required", Status: http.StatusBadRequest})
		return
	}
	if tw := f.Get("Twiml"); tw != "" {
		if err := xml.Unmarshal([]byte(tw), new(struct{})); err != nil {
			writeError(w, &apiError{Code: 12100, Message: "Document parse failure: " + err.Error(), Status: http.StatusBadRequest})
			return
		}
	}
	s.mu.Lock()
	if s.fail != nil {
		e := *s.fail
		s.mu.Unlock()
		writeError(w, &e)
		return
	}
	s.seq++
	c := Call{
		SID:            fmt.Sprintf("CA%032x", s.seq),
		To:             f.Get("To"),
		From:           f.Get("From"),
		Twiml:          f.Get("Twiml"),
		StatusCallback: f.Get("StatusCallback"),
		StatusEvents:   f["StatusCallbackEvent"],
		Timeout:        f.Get("Timeout"),
		Form:           f,
	}
	s.calls = append(s.calls, c)
	s.mu.Unlock()

	now := time.Now().UTC().Format(time.RFC1123Z)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid":          c.SID,
		"account_sid":  s.AccountSID,
		"to":           c.To,
		"from":         c.From,
		"status":       "queued",
		"direction":    "outbound-api",
		"api_version":  "2010-04-01",
		"date_created": now,
		"date_updated": now,
		"uri":          "/2010-04-01/Accounts/" + s.AccountSID + "/Calls/" + c.SID + ".json",
	})
}

func writeError(w http.ResponseWriter, e *apiError) {
	e.MoreInfo = fmt.Sprintf("https://www.twilio.com/docs/errors/%d", e.Code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e)
}

// Signature computes X-Twilio-Signature for a POST to fullURL with form:
// base64(HMAC-SHA1(token, fullURL + every key and value, keys sorted)).
// It is written here from Twilio's documentation, independently of
// twilio-go's validator, so that a test checks one against the other.
func Signature(token, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		for _, v := range form[k] {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Response is what a callback endpoint answered.
type Response struct {
	Status int
	Body   string
}

// Post sends form to fullURL as Twilio does, signed with signature (use
// Signature, or anything to test refusal).
func (s *Server) Post(ctx context.Context, fullURL string, form url.Values, signature string) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fullURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Response{}, fmt.Errorf("twiliotest: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("twiliotest: post %s: %w", fullURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Response{}, fmt.Errorf("twiliotest: post %s: %w", fullURL, err)
	}
	return Response{Status: resp.StatusCode, Body: string(bytes.TrimSpace(body))}, nil
}

// callForm is the parameters Twilio sends with every callback of c.
func (s *Server) callForm(c Call, status string) url.Values {
	return url.Values{
		"AccountSid": {s.AccountSID},
		"CallSid":    {c.SID},
		"From":       {c.From},
		"To":         {c.To},
		"Direction":  {"outbound-api"},
		"ApiVersion": {"2010-04-01"},
		"CallStatus": {status},
	}
}

// Press plays a person pressing digits during c's <Gather>: a signed POST
// to the Gather's action URL. The body is the TwiML the endpoint answered.
func (s *Server) Press(ctx context.Context, c Call, digits string) (Response, error) {
	action := c.GatherAction()
	if action == "" {
		return Response{}, errors.New("twiliotest: the call's TwiML has no <Gather action=...>")
	}
	form := s.callForm(c, "in-progress")
	form.Set("Digits", digits)
	form.Set("FinishedOnKey", "")
	return s.Post(ctx, action, form, Signature(s.AuthToken, action, form))
}

// SendStatus plays a status callback of c ("ringing", "in-progress",
// "completed", "no-answer", "busy", "failed") to its StatusCallback URL.
func (s *Server) SendStatus(ctx context.Context, c Call, status string) (Response, error) {
	if c.StatusCallback == "" {
		return Response{}, errors.New("twiliotest: the call has no StatusCallback")
	}
	form := s.callForm(c, status)
	if status == "completed" {
		form.Set("CallDuration", "42")
	}
	if status == "no-answer" || status == "busy" || status == "failed" {
		form.Set("CallDuration", "0")
	}
	return s.Post(ctx, c.StatusCallback, form, Signature(s.AuthToken, c.StatusCallback, form))
}
