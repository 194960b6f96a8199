package silence

import (
	"context"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/notifier/labels"
)

func TestAddSilenceListExpire(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "silence-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := bus.JetStream(nc)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st, err := Open(ctx, js, 1, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.Add(ctx, Silence{ID: "slack-1", Matchers: labels.Matchers{labels.MustParse("host=db-1")}, EndsAt: now.Add(time.Hour), Comment: "maint"})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := st.Add(ctx, Silence{ID: "slack-1", Matchers: s.Matchers, EndsAt: now.Add(4 * time.Hour)}); err != nil || !again.EndsAt.Equal(s.EndsAt) {
		t.Errorf("adding the same id again: %+v, %v; want the first one kept", again, err)
	}
	if got, _ := st.Silenced(ctx, map[string]string{"host": "db-1"}); got == nil || got.ID != "slack-1" {
		t.Errorf("db-1 not silenced: %v", got)
	}
	if got, _ := st.Silenced(ctx, map[string]string{"host": "db-2"}); got != nil {
		t.Errorf("db-2 silenced by %v", got)
	}
	if _, err := st.Add(ctx, Silence{EndsAt: now.Add(time.Hour)}); err == nil {
		t.Error("a silence without matchers was added")
	}
	if err := st.Expire(ctx, "slack-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Silenced(ctx, map[string]string{"host": "db-1"}); got != nil {
		t.Errorf("expired silence still mutes: %v", got)
	}
	all, err := st.List(ctx)
	if err != nil || len(all) != 1 {
		t.Errorf("List = %v, %v", all, err)
	}
	later := now.Add(2 * time.Hour)
	now = later
	if got, _ := st.Silenced(ctx, map[string]string{"host": "db-1"}); got != nil {
		t.Errorf("silence past its end mutes: %v", got)
	}
}
