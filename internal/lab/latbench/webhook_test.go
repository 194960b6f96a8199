package latbench

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

const firingPayload = `{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"hook",
"alerts":[{"status":"firing","labels":{"alertname":"TCPRetransmits"},"startsAt":"2026-12-06T20:00:00Z"}]}`

func TestWebhookRecordsFiringAndResolved(t *testing.T) {
	w, err := StartWebhook(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start := time.Now()
	post := func(name, body string) int {
		t.Helper()
		resp, err := http.Post(w.URL(name), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("fast", firingPayload); code != http.StatusOK {
		t.Fatalf("firing: status %d", code)
	}
	resolved := strings.ReplaceAll(firingPayload, `"firing"`, `"resolved"`)
	if code := post("fast", resolved); code != http.StatusOK {
		t.Fatalf("resolved: status %d", code)
	}
	for _, bad := range []string{`{`, `{"version":"3","status":"firing","alerts":[{}]}`, `{"version":"4","status":"odd","alerts":[{}]}`, `{"version":"4","status":"firing"}`} {
		if code := post("fast", bad); code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, code)
		}
	}
	if got := w.Malformed(); got != 4 {
		t.Errorf("Malformed() = %d, want 4", got)
	}
	ctx := context.Background()
	n, err := w.Feed("fast").Wait(ctx, true, start, time.Second)
	if err != nil || !strings.Contains(n.What, "TCPRetransmits=firing") {
		t.Fatalf("firing note %+v, %v", n, err)
	}
	if _, err := w.Feed("fast").Wait(ctx, false, start, time.Second); err != nil {
		t.Fatalf("resolved note: %v", err)
	}
	if got := len(w.Feed("typical").Notes()); got != 0 {
		t.Errorf("the typical feed got %d notes from the fast path", got)
	}
	if _, err := w.Feed("fast").Wait(ctx, true, time.Now().Add(time.Hour), 10*time.Millisecond); err == nil {
		t.Error("Wait found a note after its since")
	}
}
