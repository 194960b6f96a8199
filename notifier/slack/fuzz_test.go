package slack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/mciv/mciv/notifier/slack/slacktest"
)

// FuzzInteractionPayload: a signed interactivity request whose payload is
// anything (Slack's or an attacker's with a stolen secret) never panics
// the handler and is answered 200, 400 or 500; the buttons act on a real
// JetStream (embedded nats-server) with the notification log and
// silences.
func FuzzInteractionPayload(f *testing.F) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: f.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	defer nc.Close()
	js, _ := bus.JetStream(nc)
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		f.Fatal(err)
	}
	log, err := nflog.Open(ctx, js, nflog.Options{})
	if err != nil {
		f.Fatal(err)
	}
	sil, err := silence.Open(ctx, js, 1, nil)
	if err != nil {
		f.Fatal(err)
	}
	const secret = "fuzzsecret"
	h, err := NewInteractions(secret, js, log, sil, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, action := range []string{"ack", "silence_1h", "resolve", "approve", "unknown"} {
		f.Add(string(slacktest.ButtonPress{UserID: "U1", UserName: "alice", ChannelID: "C1", MessageTS: "1.2", ActionID: action, Value: "g1"}.Payload()))
	}
	f.Add(`{"type":"block_actions","actions":[{}]}`)
	f.Add(`{"type":"view_submission"}`)
	f.Add(`not json`)
	f.Fuzz(func(t *testing.T, payload string) {
		body := url.Values{"payload": {payload}}.Encode()
		now := time.Now()
		req := httptest.NewRequest(http.MethodPost, "/slack/interactivity", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("X-Slack-Signature", slacktest.Sign(secret, now, []byte(body)))
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req.WithContext(rctx))
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusInternalServerError:
		default:
			t.Fatalf("answered %d to a signed request", w.Code)
		}
	})
}
