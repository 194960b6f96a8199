package slacktest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sign returns Slack's request signature of body sent at ts with the
// signing secret: "v0=" + hex(HMAC-SHA256(secret, "v0:<unix ts>:<body>")).
func Sign(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", ts.Unix())
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// ButtonPress describes a click on a Block Kit button in a message, as
// Slack reports it to the app's interactivity endpoint.
type ButtonPress struct {
	UserID, UserName string
	ChannelID        string
	// MessageTS is the ts of the message that holds the button.
	MessageTS string
	ActionID  string
	BlockID   string
	Value     string
	// TriggerID is unique per press; empty makes one up.
	TriggerID string
	// TeamID and AppID default to the fake's (TeamID, AppID); set them to
	// forge a press from another workspace or app.
	TeamID, AppID string
	// ResponseURL is where the app may answer the press (Server.ResponseURL);
	// empty: none.
	ResponseURL string
}

// Body returns the form-encoded body Slack posts for the press: a
// "payload" field holding a block_actions interaction as JSON.
func (p ButtonPress) Body() []byte {
	return []byte(url.Values{"payload": {string(p.Payload())}}.Encode())
}

// Payload returns the press as the block_actions interaction JSON (what
// Socket Mode carries in an "interactive" envelope).
func (p ButtonPress) Payload() json.RawMessage {
	team, app := p.TeamID, p.AppID
	if team == "" {
		team = TeamID
	}
	if app == "" {
		app = AppID
	}
	trigger := p.TriggerID
	if trigger == "" {
		trigger = fmt.Sprintf("%s.%s.%s", p.MessageTS, p.UserID, p.ActionID)
	}
	payload := map[string]any{
		"type":       "block_actions",
		"trigger_id": trigger,
		"api_app_id": app,
		"team":       map[string]any{"id": team, "domain": "mciv-test"},
		"user":       map[string]any{"id": p.UserID, "name": p.UserName, "username": p.UserName},
		"channel":    map[string]any{"id": p.ChannelID, "name": "oncall"},
		"container":  map[string]any{"type": "message", "message_ts": p.MessageTS, "channel_id": p.ChannelID},
		"message":    map[string]any{"type": "message", "ts": p.MessageTS},
		"actions": []map[string]any{{
			"type": "button", "action_id": p.ActionID, "block_id": p.BlockID, "value": p.Value,
			"action_ts": strconv.FormatInt(time.Now().Unix(), 10) + ".000100",
		}},
	}
	if p.ResponseURL != "" {
		payload["response_url"] = p.ResponseURL
	}
	b, _ := json.Marshal(payload)
	return b
}

// Post sends body to an interactivity endpoint as Slack does, signed with
// secret at ts (pass a wrong secret or an old ts to forge or replay), and
// returns the HTTP status and response body.
func Post(ctx context.Context, endpoint, secret string, ts time.Time, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Sign(secret, ts, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b), nil
}
