package slack

import (
	"testing"

	"github.com/mciv/mciv/internal/wire"
)

func TestThreadPoster(t *testing.T) {
	ctx := testCtx(t)
	env := newIncidentsEnv(t)
	n := env.replica(t, "r1", nil)
	var tp ThreadPoster = n
	if err := tp.PostThreadReply(ctx, "unknown", "hello"); err != nil {
		t.Fatalf("reply for an alert without a message: %v", err)
	}
	if ok, err := n.HasThread(ctx, "fpA"); err != nil || ok {
		t.Fatalf("HasThread before the message = %v, %v; want false", ok, err)
	}
	if err := n.Notify(ctx, alertOf("fpA", wire.StateFiring, env.clock.Now(), 1)); err != nil {
		t.Fatal(err)
	}
	if ok, err := n.HasThread(ctx, "fpA"); err != nil || !ok {
		t.Fatalf("HasThread after the message = %v, %v; want true", ok, err)
	}
	if err := tp.PostThreadReply(ctx, "fpA", "Calling the on-call engineer"); err != nil {
		t.Fatal(err)
	}
	if err := tp.UploadToThread(ctx, "fpA", "alert.wav", []byte("RIFF....WAVE"), "Spoken alert"); err != nil {
		t.Fatal(err)
	}
	top, replies := topLevel(env.slack.Current())
	files := env.slack.Files()
	if len(replies) != 1 || replies[0].ThreadTS != top[0].TS || replies[0].Text != "Calling the on-call engineer" {
		t.Errorf("replies %+v", replies)
	}
	if len(files) != 1 || files[0].Filename != "alert.wav" || files[0].ThreadTS != top[0].TS {
		t.Errorf("files %+v", files)
	}
}
