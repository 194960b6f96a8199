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
		body, ok := h.verifiedBody(w, r, "slash command")
		if !ok {
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
