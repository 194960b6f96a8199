// Package slacktest is a fake Slack Web API for tests: an httptest server
// that the real github.com/slack-go/slack client talks to, so that tests
// exercise the client library, its encoding and its error handling, and only
// Slack itself is replaced.
//
// It speaks the methods mciv's notifier uses: chat.postMessage (with
// message metadata), chat.update, conversations.history, conversations.list (with cursor paging), auth.test and the three-step external file upload
// (files.getUploadURLExternal, a POST of the bytes to the upload URL it
// returned — served by this fake too — and files.completeUploadExternal), with form-encoded or JSON bodies (slack-go sends forms with
// the token in the body; other clients send JSON with an Authorization:
// Bearer header; both are accepted). It checks the token, records every
// message with the ts it assigned, answers with Slack-shaped JSON, checks a
// few Block Kit limits that Slack enforces (so that a message Slack would
// reject fails here too), and can be told to fail the next calls with a
// rate limit (429 with Retry-After) or a server error.
//
// Point a client at it with slack.OptionAPIURL(srv.URL()).
package slacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Message is one chat.postMessage or chat.update call that succeeded.
type Message struct {
	// Method is "chat.postMessage" or "chat.update".
	Method string
	// Channel is the channel as the client named it ("#oncall" or "C0123").
	Channel string
	// ChannelID is the channel ID the server answered with.
	ChannelID string
	// Text is the top-level text (the notification fallback).
	Text string
	// Blocks is the JSON array of Block Kit blocks as sent; nil if none.
	Blocks json.RawMessage
	// Attachments is the JSON array of legacy attachments; nil if none.
	Attachments json.RawMessage
	// ThreadTS is the thread_ts the message was posted into, if any.
	ThreadTS string
	// TS identifies the message: assigned by chat.postMessage, and the ts of
	// the message edited for chat.update.
	TS string
	// Metadata is the message metadata as sent ({"event_type":...,
	// "event_payload":{...}}); nil if none.
	Metadata json.RawMessage
}

// BlockText returns every text string found in the message's blocks (header,
// section text and fields, context elements, button labels, ...), one per
// line, in reading order. It lets a test check what a reader sees without
// depending on the block layout.
func (m Message) BlockText() string {
	if len(m.Blocks) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(m.Blocks, &v); err != nil {
		return ""
	}
	var texts []string
	collectText(v, &texts)
	return strings.Join(texts, "\n")
}

func collectText(v any, texts *[]string) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			collectText(e, texts)
		}
	case map[string]any:
		if s, ok := v["text"].(string); ok {
			*texts = append(*texts, s)
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		// Block Kit's fields are read in this order; the rest follows.
		slices.SortStableFunc(keys, func(a, b string) int { return order(a) - order(b) })
		for _, k := range keys {
			collectText(v[k], texts)
		}
	}
}

func order(key string) int {
	switch key {
	case "text":
		return 0
	case "fields":
		return 1
	case "elements":
		return 2
	case "accessory":
		return 3
	}
	return 4
}

// Request is one API call the server answered, successful or not.
type Request struct {
	// Method is the API method, e.g. "chat.postMessage".
	Method string
	// Status is the HTTP status code of the answer.
	Status int
	// Error is the Slack error code of an {"ok":false} answer, else "".
	Error string
}

// Server is a running fake Slack Web API. Its methods are safe for
// concurrent use.
type Server struct {
	token string
	srv   *httptest.Server

	mu       sync.Mutex
	messages []Message         // every successful post and update, in order
	current  []Message         // every posted message as it is now
	byTS     map[string]int    // channelID/ts -> index into current
	channels map[string]string // name -> ID
	requests []Request         // every call
	fail     struct {          // what FailNext asked for
		n          int
		status     int
		retryAfter time.Duration
	}
	down      int            // SetDown's status: every call fails with it while not 0
	stall     chan struct{}  // SetStalled: calls wait until it is closed; nil: none
	lose      map[string]int // LoseAnswers: calls per method to accept without answering
	seq       int
	changed   chan struct{}    // closed and replaced whenever messages or files grow
	uploads   map[string]*File // by file id: requested or uploaded, not yet shared
	files     []File           // shared by files.completeUploadExternal, in order
	responses []Response       // posted to ResponseURL (response.go)

	sock socket // Socket Mode (socketmode.go)
}

// NewServer starts a fake Slack that accepts token. Close it when done.
func NewServer(token string) *Server {
	s := &Server{
		token:    token,
		byTS:     make(map[string]int),
		channels: make(map[string]string),
		changed:  make(chan struct{}),
		uploads:  make(map[string]*File),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.serve)
	mux.HandleFunc("/upload/{id}", s.upload)
	mux.HandleFunc("/socket", s.serveSocket)
	mux.HandleFunc("/response", s.respond)
	s.srv = httptest.NewServer(mux)
	return s
}

// New starts a fake Slack that accepts token and closes it when the test
// ends.
func New(t testing.TB, token string) *Server {
	t.Helper()
	s := NewServer(token)
	t.Cleanup(s.Close)
	return s
}

// Close shuts the server down and closes its connections.
func (s *Server) Close() {
	s.SetStalled(false)
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// URL is the API base URL to give slack.OptionAPIURL (or the notifier's
// APIURL): "http://127.0.0.1:port/api/", with the trailing slash slack-go
// expects.
func (s *Server) URL() string { return s.srv.URL + "/api/" }

// Messages returns a copy of every successful chat.postMessage and
// chat.update, in the order they arrived.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// Current returns every posted message as it looks now, after any
// chat.update, in the order they were posted.
func (s *Server) Current() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.current)
}

// Requests returns every API call answered so far, including the ones
// FailNext failed and the ones rejected with {"ok":false}.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// WaitMessages waits until at least n messages (as Messages counts them)
// have arrived and returns them, or returns what arrived so far and an error
// when ctx ends first.
func (s *Server) WaitMessages(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		msgs, changed := slices.Clone(s.messages), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-ctx.Done():
			return msgs, fmt.Errorf("slacktest: %d of %d messages arrived: %w", len(msgs), n, ctx.Err())
		case <-changed:
		}
	}
}

// FailNext makes the next n API calls (of any method) fail with the HTTP
// status code, replacing what an earlier FailNext asked for. With a positive
// retryAfter the answers carry a Retry-After header of that many seconds
// (rounded up), as Slack sends with 429 Too Many Requests; slack-go turns
// such a 429 into a *slack.RateLimitedError.
func (s *Server) FailNext(n int, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail.n, s.fail.status, s.fail.retryAfter = n, status, retryAfter
}

// SetDown makes every API call fail with the HTTP status code (503: an
// outage) until SetDown(0); while down, FailNext's count is not used.
func (s *Server) SetDown(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = status
}

// SetStalled(true) makes every API call wait, without an answer, until
// SetStalled(false) or until its client gives up; then it is answered as
// usual (with SetDown's status while down). Together with SetDown it is a
// slow outage: a load balancer that answers 503 only after a long wait.
func (s *Server) SetStalled(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.stall == nil:
		s.stall = make(chan struct{})
	case !on && s.stall != nil:
		close(s.stall)
		s.stall = nil
	}
}

// waitStall waits while the server is stalled, or until ctx ends.
func (s *Server) waitStall(ctx context.Context) {
	s.mu.Lock()
	stall := s.stall
	s.mu.Unlock()
	if stall == nil {
		return
	}
	select {
	case <-stall:
	case <-ctx.Done():
	}
}

// LoseAnswers makes the next n calls of method take effect (a message is
// posted) without their answer ever reaching the client: the request
// hangs until the client gives up (its context ends), as when the notifier
// is killed after Slack accepted a message and before it stored the ts.
func (s *Server) LoseAnswers(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lose == nil {
		s.lose = make(map[string]int)
	}
	s.lose[method] = n
}

// loseAnswer reports whether the answer to this call of method is lost,
// counting it.
func (s *Server) loseAnswer(method string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lose[method] <= 0 {
		return false
	}
	s.lose[method]--
	return true
}

// The Slack error codes the server answers with.
const (
	errNotAuthed       = "not_authed"
	errInvalidAuth     = "invalid_auth"
	errUnknownMethod   = "unknown_method"
	errChannelNotFound = "channel_not_found"
	errNoText          = "no_text"
	errInvalidBlocks   = "invalid_blocks"
	errMessageNotFound = "message_not_found"
	errInvalidArgs     = "invalid_arguments"
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	if r.Method != http.MethodPost {
		s.answerError(w, method, http.StatusMethodNotAllowed, "method_not_allowed")
		return
	}
	s.waitStall(r.Context())
	if s.injectFailure(w, method) {
		return
	}
	if method == "apps.connections.open" {
		s.openConnection(w, r)
		return
	}
	params, bearer, err := readParams(r)
	if err != nil {
		s.answerError(w, method, http.StatusOK, errInvalidArgs)
		return
	}
	token := bearer
	if token == "" {
		token = params.str("token")
	}
	switch {
	case token == "":
		s.answerError(w, method, http.StatusOK, errNotAuthed)
		return
	case token != s.token:
		s.answerError(w, method, http.StatusOK, errInvalidAuth)
		return
	}
	switch method {
	case "auth.test":
		s.answer(w, method, map[string]any{
			"url": "https://mciv-test.slack.com/", "team": "mciv-test", "user": "marvel",
			"team_id": TeamID, "user_id": "U0000000001", "bot_id": "B0000000001",
		})
	case "chat.postMessage":
		if s.loseAnswer(method) {
			s.postMessage(httptest.NewRecorder(), params)
			<-r.Context().Done() // the client went away without the answer
			return
		}
		s.postMessage(w, params)
	case "conversations.history":
		s.history(w, params)
	case "conversations.list":
		s.list(w, params)
	case "chat.update":
		s.update(w, params)
	case "files.getUploadURLExternal":
		s.getUploadURL(w, params)
	case "files.completeUploadExternal":
		s.completeUpload(w, params)
	default:
		s.answerError(w, method, http.StatusNotFound, errUnknownMethod)
	}
}

// injectFailure answers the call with the failure FailNext asked for, if any.
func (s *Server) injectFailure(w http.ResponseWriter, method string) bool {
	s.mu.Lock()
	status, retryAfter := s.down, time.Duration(0)
	if status == 0 {
		if s.fail.n <= 0 {
			s.mu.Unlock()
			return false
		}
		s.fail.n--
		status, retryAfter = s.fail.status, s.fail.retryAfter
	}
	s.requests = append(s.requests, Request{Method: method, Status: status})
	s.mu.Unlock()

	if retryAfter > 0 {
		secs := int64((retryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
		return true
	}
	// Slack answers server errors with an HTML page.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "<html><body>%d %s</body></html>", status, http.StatusText(status))
	return true
}

func (s *Server) postMessage(w http.ResponseWriter, p params) {
	const method = "chat.postMessage"
	channel := p.str("channel")
	if channel == "" {
		s.answerError(w, method, http.StatusOK, errChannelNotFound)
		return
	}
	m := Message{
		Method:      method,
		Channel:     channel,
		Text:        p.str("text"),
		Blocks:      p.raw("blocks"),
		Attachments: p.raw("attachments"),
		ThreadTS:    p.str("thread_ts"),
		Metadata:    p.raw("metadata"),
	}
	if code := checkContent(m); code != "" {
		s.answerError(w, method, http.StatusOK, code)
		return
	}

	s.mu.Lock()
	m.ChannelID = s.channelIDLocked(channel)
	s.seq++
	m.TS = fmt.Sprintf("%d.%06d", 1700000000+s.seq/10000, (s.seq%10000)*100)
	s.byTS[m.ChannelID+"/"+m.TS] = len(s.current)
	s.current = append(s.current, m)
	s.recordLocked(m)
	s.mu.Unlock()

	s.answer(w, method, map[string]any{
		"channel": m.ChannelID,
		"ts":      m.TS,
		"message": map[string]any{
			"type": "message", "subtype": "bot_message", "bot_id": "B0000000001",
			"text": m.Text, "ts": m.TS, "thread_ts": m.ThreadTS, "blocks": m.Blocks,
		},
	})
}

// history answers conversations.history: the channel's top-level messages,
// newest first, up to limit (default 100), older than latest and newer
// than oldest when given; their metadata only with include_all_metadata.
func (s *Server) history(w http.ResponseWriter, p params) {
	const method = "conversations.history"
	channel := p.str("channel")
	if !channelIDPattern.MatchString(channel) {
		s.answerError(w, method, http.StatusOK, errChannelNotFound)
		return
	}
	limit, _ := strconv.Atoi(p.str("limit"))
	if limit <= 0 || limit > 999 {
		limit = 100
	}
	oldest, latest := p.str("oldest"), p.str("latest")
	withMeta := p.str("include_all_metadata") == "1" || p.str("include_all_metadata") == "true"
	s.mu.Lock()
	var out []map[string]any
	for i := len(s.current) - 1; i >= 0 && len(out) < limit; i-- {
		m := s.current[i]
		if m.ChannelID != channel || m.ThreadTS != "" ||
			(oldest != "" && tsLess(m.TS, oldest)) || (latest != "" && !tsLess(m.TS, latest)) {
			continue
		}
		msg := map[string]any{"type": "message", "subtype": "bot_message", "bot_id": "B0000000001", "text": m.Text, "ts": m.TS}
		if withMeta && len(m.Metadata) > 0 {
			msg["metadata"] = m.Metadata
		}
		out = append(out, msg)
	}
	s.mu.Unlock()
	s.answer(w, method, map[string]any{"messages": out, "has_more": false})
}

// AddChannels creates channels by name (without '#'), as a workspace
// that has them, and returns their IDs. Posting to a new name creates
// its channel too.
func (s *Server) AddChannels(names ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = s.channelIDLocked(n)
	}
	return ids
}

// list answers conversations.list: the channels by name order, a page of
// limit (default 100, at most 1000) at a time, with Slack's cursor
// paging (response_metadata.next_cursor, "" on the last page).
func (s *Server) list(w http.ResponseWriter, p params) {
	const method = "conversations.list"
	limit, _ := strconv.Atoi(p.str("limit"))
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	from := 0
	if c := p.str("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "page:"))
		if err != nil || !strings.HasPrefix(c, "page:") || n < 0 {
			s.answerError(w, method, http.StatusOK, "invalid_cursor")
			return
		}
		from = n
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.channels))
	for n := range s.channels {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []map[string]any
	for _, n := range names[min(from, len(names)):min(from+limit, len(names))] {
		out = append(out, map[string]any{"id": s.channels[n], "name": n, "is_channel": true, "is_member": true, "is_archived": false})
	}
	s.mu.Unlock()
	next := ""
	if from+limit < len(names) {
		next = "page:" + strconv.Itoa(from+limit)
	}
	s.answer(w, method, map[string]any{"channels": out, "response_metadata": map[string]any{"next_cursor": next}})
}

// tsLess orders Slack timestamps ("1700000000.000100").
func tsLess(a, b string) bool {
	fa, _ := strconv.ParseFloat(a, 64)
	fb, _ := strconv.ParseFloat(b, 64)
	return fa < fb
}

func (s *Server) update(w http.ResponseWriter, p params) {
	const method = "chat.update"
	channel, ts := p.str("channel"), p.str("ts")
	if channel == "" {
		s.answerError(w, method, http.StatusOK, errChannelNotFound)
		return
	}
	m := Message{
		Method:      method,
		Channel:     channel,
		Text:        p.str("text"),
		Blocks:      p.raw("blocks"),
		Attachments: p.raw("attachments"),
		TS:          ts,
	}
	if code := checkContent(m); code != "" {
		s.answerError(w, method, http.StatusOK, code)
		return
	}

	s.mu.Lock()
	m.ChannelID = s.channelIDLocked(channel)
	i, ok := s.byTS[m.ChannelID+"/"+ts]
	if !ok {
		s.mu.Unlock()
		s.answerError(w, method, http.StatusOK, errMessageNotFound)
		return
	}
	cur := &s.current[i]
	cur.Text, cur.Blocks, cur.Attachments = m.Text, m.Blocks, m.Attachments
	m.ThreadTS = cur.ThreadTS
	s.recordLocked(m)
	s.mu.Unlock()

	s.answer(w, method, map[string]any{"channel": m.ChannelID, "ts": ts, "text": m.Text})
}

func (s *Server) recordLocked(m Message) {
	s.messages = append(s.messages, m)
	s.notifyLocked()
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

var channelIDPattern = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)

// channelIDLocked maps a channel name to a stable fake ID; IDs map to
// themselves.
func (s *Server) channelIDLocked(channel string) string {
	if channelIDPattern.MatchString(channel) {
		return channel
	}
	name := strings.TrimPrefix(channel, "#")
	id, ok := s.channels[name]
	if !ok {
		id = fmt.Sprintf("C%010d", len(s.channels)+1)
		s.channels[name] = id
	}
	return id
}

// Block Kit limits Slack enforces (https://docs.slack.dev/reference/block-kit/blocks).
const (
	maxBlocks          = 50
	maxHeaderText      = 150
	maxSectionText     = 3000
	maxSectionFields   = 10
	maxFieldText       = 2000
	maxContextElements = 10
	maxMessageText     = 40000
)

// checkContent returns the Slack error code for a message Slack would
// reject, or "".
func checkContent(m Message) string {
	if m.Text == "" && len(m.Blocks) == 0 && len(m.Attachments) == 0 {
		return errNoText
	}
	if len([]rune(m.Text)) > maxMessageText {
		return "msg_too_long"
	}
	if len(m.Blocks) == 0 {
		return ""
	}
	type textObj struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	var blocks []struct {
		Type     string            `json:"type"`
		Text     *textObj          `json:"text"`
		Fields   []textObj         `json:"fields"`
		Elements []json.RawMessage `json:"elements"`
	}
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil || len(blocks) > maxBlocks {
		return errInvalidBlocks
	}
	for _, b := range blocks {
		switch b.Type {
		case "":
			return errInvalidBlocks
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || b.Text.Text == "" || len([]rune(b.Text.Text)) > maxHeaderText {
				return errInvalidBlocks
			}
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				return errInvalidBlocks
			}
			if b.Text != nil && (b.Text.Text == "" || len([]rune(b.Text.Text)) > maxSectionText) {
				return errInvalidBlocks
			}
			if len(b.Fields) > maxSectionFields {
				return errInvalidBlocks
			}
			for _, f := range b.Fields {
				if f.Text == "" || len([]rune(f.Text)) > maxFieldText {
					return errInvalidBlocks
				}
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > maxContextElements {
				return errInvalidBlocks
			}
		}
	}
	return ""
}

func (s *Server) answer(w http.ResponseWriter, method string, fields map[string]any) {
	fields["ok"] = true
	body, err := json.Marshal(fields)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: method, Status: http.StatusOK})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
}

func (s *Server) answerError(w http.ResponseWriter, method string, status int, code string) {
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: method, Status: status, Error: code})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"ok":false,"error":%q}`, code)
}

// params are the arguments of an API call, from a form or a JSON body.
type params map[string]json.RawMessage

// str returns a string argument ("" if absent).
func (p params) str(name string) string {
	v, ok := p[name]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s
	}
	return string(v) // a number or bool sent in a JSON body
}

// raw returns a JSON argument (blocks, attachments) or nil.
func (p params) raw(name string) json.RawMessage {
	v, ok := p[name]
	if !ok || string(v) == "null" {
		return nil
	}
	// In a form the JSON arrives as a string holding JSON.
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return json.RawMessage(s)
	}
	return v
}

// readParams reads a form-encoded or JSON body; it also returns the bearer
// token of the Authorization header, if any.
func readParams(r *http.Request) (params, string, error) {
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	p := params{}
	if ctype == "application/json" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return nil, "", fmt.Errorf("read body: %w", err)
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &p); err != nil {
				return nil, "", fmt.Errorf("json body: %w", err)
			}
		}
		return p, bearer, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, "", fmt.Errorf("form body: %w", err)
	}
	for k, vs := range r.Form {
		if len(vs) > 0 {
			b, _ := json.Marshal(vs[0])
			p[k] = b
		}
	}
	return p, bearer, nil
}
