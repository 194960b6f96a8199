package slacktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Socket Mode: with EnableSocketMode the fake also speaks Slack's Socket
// Mode protocol (https://docs.slack.dev/apis/events-api/using-socket-mode):
// apps.connections.open, called with the app-level token (xapp-...),
// answers the URL of a WebSocket served by the fake; on connect the fake
// sends {"type":"hello"}, pings every PingInterval, and Send delivers an
// envelope ({"envelope_id","type","payload","accepts_response_payload"})
// and waits for the app's acknowledgement ({"envelope_id","payload"}).

// AppID is the app the fake's Socket Mode connections belong to (in the
// hello message's connection_info and in payloads made by ButtonPress).
const AppID = "A0000000001"

// TeamID is the fake workspace (auth.test's team_id).
const TeamID = "T0000000001"

// PingInterval is how often the fake pings a Socket Mode connection.
const PingInterval = 200 * time.Millisecond

// socket is the fake's Socket Mode state.
type socket struct {
	mu        sync.Mutex
	appToken  string
	conns     []*websocket.Conn // newest last
	writers   map[*websocket.Conn]func(any) error
	connected chan struct{} // closed and replaced on every connection
	acks      map[string]chan json.RawMessage
	seq       int
	opened    int // apps.connections.open calls answered
}

// EnableSocketMode lets apps.connections.open accept appToken.
func (s *Server) EnableSocketMode(appToken string) {
	s.sock.mu.Lock()
	defer s.sock.mu.Unlock()
	s.sock.appToken = appToken
}

// openConnection answers apps.connections.open.
func (s *Server) openConnection(w http.ResponseWriter, r *http.Request) {
	const method = "apps.connections.open"
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.sock.mu.Lock()
	want := s.sock.appToken
	s.sock.opened++
	s.sock.mu.Unlock()
	switch {
	case want == "":
		s.answerError(w, method, http.StatusOK, "not_allowed_token_type")
	case bearer == "":
		s.answerError(w, method, http.StatusOK, errNotAuthed)
	case bearer != want:
		s.answerError(w, method, http.StatusOK, errInvalidAuth)
	default:
		s.answer(w, method, map[string]any{"url": "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/socket"})
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// serveSocket is the Socket Mode WebSocket.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	var wmu sync.Mutex
	write := func(v any) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.WriteJSON(v)
	}
	if err := write(map[string]any{
		"type": "hello", "num_connections": 1,
		"connection_info": map[string]any{"app_id": AppID},
		"debug_info":      map[string]any{"host": "slacktest", "approximate_connection_time": 3600},
	}); err != nil {
		return
	}
	s.sock.mu.Lock()
	s.sock.conns = append(s.sock.conns, conn)
	if s.sock.connected == nil {
		s.sock.connected = make(chan struct{})
	}
	close(s.sock.connected)
	s.sock.connected = make(chan struct{})
	if s.sock.writers == nil {
		s.sock.writers = make(map[*websocket.Conn]func(any) error)
	}
	s.sock.writers[conn] = write
	s.sock.mu.Unlock()
	defer func() {
		s.sock.mu.Lock()
		delete(s.sock.writers, conn)
		for i, c := range s.sock.conns {
			if c == conn {
				s.sock.conns = append(s.sock.conns[:i], s.sock.conns[i+1:]...)
				break
			}
		}
		s.sock.mu.Unlock()
	}()

	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(PingInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if conn.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)) != nil {
					return
				}
			}
		}
	}()
	for {
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := conn.ReadJSON(&ack); err != nil {
			return
		}
		s.sock.mu.Lock()
		ch := s.sock.acks[ack.EnvelopeID]
		delete(s.sock.acks, ack.EnvelopeID)
		s.sock.mu.Unlock()
		if ch != nil {
			ch <- ack.Payload
		}
	}
}

// WaitSocket waits until an app is connected over Socket Mode.
func (s *Server) WaitSocket(ctx context.Context) error {
	for {
		s.sock.mu.Lock()
		n := len(s.sock.conns)
		if s.sock.connected == nil {
			s.sock.connected = make(chan struct{})
		}
		ch := s.sock.connected
		s.sock.mu.Unlock()
		if n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("slacktest: no Socket Mode connection: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Send delivers an envelope of type typ ("interactive", "slash_commands",
// "events_api") with payload over the newest Socket Mode connection and
// returns the payload of the app's acknowledgement (null if it sent none).
func (s *Server) Send(ctx context.Context, typ string, payload json.RawMessage) (json.RawMessage, error) {
	if err := s.WaitSocket(ctx); err != nil {
		return nil, err
	}
	s.sock.mu.Lock()
	if len(s.sock.conns) == 0 {
		s.sock.mu.Unlock()
		return nil, errors.New("slacktest: the Socket Mode connection closed")
	}
	conn := s.sock.conns[len(s.sock.conns)-1]
	s.sock.seq++
	id := fmt.Sprintf("env-%06d", s.sock.seq)
	ch := make(chan json.RawMessage, 1)
	if s.sock.acks == nil {
		s.sock.acks = make(map[string]chan json.RawMessage)
	}
	s.sock.acks[id] = ch
	write := s.sock.writers[conn]
	s.sock.mu.Unlock()
	if err := write(map[string]any{
		"envelope_id": id, "type": typ, "payload": payload,
		"accepts_response_payload": typ != "events_api", "retry_attempt": 0, "retry_reason": "",
	}); err != nil {
		return nil, fmt.Errorf("slacktest: send envelope: %w", err)
	}
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("slacktest: envelope %s not acknowledged: %w", id, ctx.Err())
	case p := <-ch:
		return p, nil
	}
}

// Press sends a button press over Socket Mode as an "interactive" envelope.
func (s *Server) Press(ctx context.Context, p ButtonPress) (json.RawMessage, error) {
	return s.Send(ctx, "interactive", p.Payload())
}

// SlashCommand is a slash command as Slack delivers it.
type SlashCommand struct {
	Command, Text     string
	UserID, UserName  string
	ChannelID, TeamID string
}

// Command sends a slash command over Socket Mode and returns the app's
// response payload ({"response_type":"in_channel","text":...}).
func (s *Server) Command(ctx context.Context, c SlashCommand) (json.RawMessage, error) {
	team := c.TeamID
	if team == "" {
		team = TeamID
	}
	b, err := json.Marshal(map[string]any{
		"token": "deprecated-verification-token", "team_id": team, "team_domain": "mciv-test",
		"channel_id": c.ChannelID, "channel_name": "oncall", "user_id": c.UserID, "user_name": c.UserName,
		"command": c.Command, "text": c.Text, "api_app_id": AppID,
		"response_url": s.srv.URL + "/response", "trigger_id": fmt.Sprintf("trig-%d", time.Now().UnixNano()),
	})
	if err != nil {
		return nil, err
	}
	return s.Send(ctx, "slash_commands", b)
}
