package notifier_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/storelab"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/console"
	"github.com/mciv/mciv/notifier/inhibit"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
)

// TestFullStoreFailsOpen: with the notification log and the silences
// bucket full, an alert is delivered all the same (the failed write is
// counted by bucket), and a silence that exists still mutes.
func TestFullStoreFailsOpen(t *testing.T) {
	// Longer than testCtx: listing the keys of two full buckets for every
	// delivery is slow on a loaded machine with -race.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := startNATS(t, ctx, t.TempDir())
	log, err := nflog.Open(ctx, env.js, nflog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sil, err := silence.Open(ctx, env.js, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sil.Add(ctx, silence.Silence{Matchers: labels.Matchers{labels.MustParse("host=db-2")}, EndsAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{nflog.Bucket, silence.Bucket} {
		if _, err := storelab.Fill(ctx, env.js, b); err != nil {
			t.Fatal(err)
		}
	}
	out := newLines()
	cfg := fast
	cfg.Muter = inhibit.NewMuter(nil, sil, log)
	r := start(t, ctx, env.js, cfg, console.New(out))
	env.waitAcked(ctx, notifier.DefaultDurable, env.publish(ctx, alert("RuleA", "db-2")))
	seq := env.publish(ctx, alert("RuleA", "db-1"))
	got, err := out.wait(ctx, 1)
	if err != nil {
		t.Fatalf("nothing delivered with a full store: %v", err)
	}
	env.waitAcked(ctx, notifier.DefaultDurable, seq)
	if len(got) != 1 || !strings.Contains(got[0], "host=db-1") {
		t.Errorf("console %q, want only db-1 (db-2 is silenced)", got)
	}
	if n := r.counter("mciv_notifier_state_failures_total", "bucket", nflog.Bucket, "op", "write"); n < 2 {
		t.Errorf("failed notification-log writes counted %v, want 2 or more (one per delivery)", n)
	}
	if n := r.counter("mciv_notifier_messages_total", "outcome", "muted"); n != 1 {
		t.Errorf("muted %v, want 1", n)
	}
	r.stop()
}
