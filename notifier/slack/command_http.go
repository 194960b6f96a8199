package slack

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	slackgo "github.com/slack-go/slack"
)

// CommandHandler serves /mciv for HTTP mode (the slash command's Request
// URL): the request is verified like a button press (Verify), and the
// answer is posted in the channel. Socket Mode does without it.
func (h *Interactions) CommandHandler(failover FailoverSwitch) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := h.Verify(r.Header, body); err != nil {
			h.logger.Warn("refusing an unverified slash command", "remote", r.RemoteAddr, "reason", err)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		cmd, err := slackgo.SlashCommandParse(r)
		if err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		text := h.Command(r.Context(), cmd, failover)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"response_type": "in_channel", "text": text})
	})
}
