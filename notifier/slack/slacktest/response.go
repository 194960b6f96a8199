package slacktest

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
)

// Response is a message an app posted to a response_url (an answer to a
// button press or a slash command, often ephemeral).
type Response struct {
	Text            string `json:"text"`
	ResponseType    string `json:"response_type"`
	ReplaceOriginal bool   `json:"replace_original"`
}

// ResponseURL is the response_url the fake hands out with a press: what
// the app posts there is kept (Responses).
func (s *Server) ResponseURL() string { return s.srv.URL + "/response" }

// Responses returns what was posted to ResponseURL, in order.
func (s *Server) Responses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}

// respond records a post to the response_url, as Slack accepts it: a JSON
// message answered with "ok".
func (s *Server) respond(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var m Response
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&m); err != nil || m.Text == "" {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.responses = append(s.responses, m)
	s.notifyLocked()
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}
