package slack

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/bus"
	slackgo "github.com/slack-go/slack"
)

// tellUser answers a button press that could not be handled with a
// message only its presser sees (ephemeral, posted to the press's
// response_url), saying what failed in words a person can act on: a full
// store names its bucket. It carries no internal detail beyond that. It
// reports whether the message was posted.
func (h *Interactions) tellUser(ctx context.Context, cb *slackgo.InteractionCallback, action string, err error) bool {
	if cb.ResponseURL == "" {
		return false
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	msg := &slackgo.WebhookMessage{ResponseType: "ephemeral", Text: pressFailure(action, err)}
	client := &http.Client{Timeout: 5 * time.Second}
	if perr := slackgo.PostWebhookCustomHTTPContext(pctx, cb.ResponseURL, client, msg); perr != nil {
		h.logger.Warn("could not tell the user their press failed", "user", cb.User.ID, "err", perr)
		return false
	}
	return true
}

// pressFailure is the text that tells a person why their press did
// nothing.
func pressFailure(action string, err error) string {
	what := "your " + buttonName(action) + " press"
	for _, se := range bus.StoreErrors(err) {
		if se.Full() {
			return ":warning: mciv could not record " + what + ": its store is full (JetStream bucket " + se.Bucket +
				"). Nothing was changed, and alerts are still being delivered. Ask an operator to free room " +
				"(mciv_jetstream_stream_usage_ratio shows which bucket), or use `mciv silence add` once it has."
		}
		return ":warning: mciv could not record " + what + ": it cannot reach its store (JetStream bucket " + se.Bucket +
			"). Nothing was changed; try again in a minute."
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ":warning: mciv could not record " + what + " in time. Nothing was changed; try again."
	}
	return ":warning: mciv could not handle " + what + ". Nothing was changed; try again, and tell an operator if it keeps failing."
}

// buttonName is a button's name for a person ("Silence 1h", "Acknowledge").
func buttonName(action string) string {
	switch {
	case action == ActionAcknowledge:
		return "Acknowledge"
	case action == ActionResolve:
		return "Resolve"
	case action == ActionApprove:
		return "Approve"
	case strings.HasPrefix(action, ActionSilence):
		return "Silence " + strings.TrimPrefix(action, ActionSilence)
	}
	return "button"
}
