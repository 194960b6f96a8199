package bus

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/wire"
)

// A full alerts stream keeps taking new alert changes (it discards its
// oldest), every stream has a byte limit, and the watcher reports the
// stream near full.
func TestStreamsHaveByteLimitsAndKeepTheNewest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := startJetStream(ctx, t)
	if err := EnsureStreams(ctx, js, StreamOptions{MaxBytes: map[string]int64{AlertsStream: 64 << 10}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{AlertsStream, ActionsStream, AcksStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		c := s.CachedInfo().Config
		if c.MaxBytes <= 0 || c.Discard != jetstream.DiscardOld {
			t.Errorf("stream %s: max_bytes %d, discard %v; want a limit and discard old", name, c.MaxBytes, c.Discard)
		}
	}
	payload := make([]byte, 1000)
	subj := wire.AlertSubject("c", "R")
	for i := range 200 { // ~200 KB into 64 KiB
		if _, err := js.Publish(ctx, subj, payload, jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatalf("publish %d into a full stream: %v", i, err)
		}
	}
	s, _ := js.Stream(ctx, AlertsStream)
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > 64<<10 || info.State.LastSeq != 200 {
		t.Fatalf("stream holds %d bytes up to seq %d; want at most 64 KiB and the newest (200)", info.State.Bytes, info.State.LastSeq)
	}
	reg := prometheus.NewRegistry()
	w, err := NewUsageWatcher(js, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	full, err := w.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(full, AlertsStream) || slices.Contains(full, AcksStream) {
		t.Fatalf("near full: %v, want %s only", full, AlertsStream)
	}
	if r := testutil.ToFloat64(w.ratio.WithLabelValues(AlertsStream)); r < NearFull || r > 1 {
		t.Fatalf("usage ratio %v", r)
	}
	// Limited to named streams (a role that may not list them all): a
	// missing one is skipped, the others are read.
	only, err := NewUsageWatcher(js, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	full, err = only.Only(AcksStream, "MCIV_NO_SUCH_STREAM", AlertsStream).Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(full, []string{AlertsStream}) {
		t.Fatalf("near full among the named streams: %v, want %s", full, AlertsStream)
	}
	if got := testutil.CollectAndCount(only.ratio); got != 2 {
		t.Fatalf("%d streams observed, want the 2 named ones that exist", got)
	}
}
