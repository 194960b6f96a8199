package analyzer

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

// The crash test's helper process: it runs an analyzer whose JetStream
// has no alerts stream (an outage of the stream: every publication
// fails), feeds it batches that fire and resolve alerts, prints the
// message ids of what it queued, and waits to be killed.
const (
	crashEnvURL = "MCIV_OUTBOX_CRASH_URL"
	crashEnvDir = "MCIV_OUTBOX_CRASH_DIR"
)

// crashHosts fire; the first crashResolved of them resolve too.
const (
	crashHosts    = 5
	crashResolved = 3
)

// crashFeed sends the batches of the crash test: every host anomalous
// for 6 s (firing after 3 s), then the first crashResolved hosts quiet
// until they resolve; the clock ends after the last batch.
func crashFeed(ctx context.Context, a *Analyzer, clk *clock) {
	for seq := range 16 {
		for h := range crashHosts {
			v := 10.0
			if seq >= 6 {
				v = math.NaN()
				if h >= crashResolved {
					v = 10
				}
			}
			var series []wire.Series
			if !math.IsNaN(v) {
				series = append(series, retrans(v))
			}
			send(ctx, a, clk, hostBatch("db-"+strconv.Itoa(h), seq, series...))
		}
	}
}

func TestOutboxCrashHelper(t *testing.T) {
	url, dir := os.Getenv(crashEnvURL), os.Getenv(crashEnvDir)
	if url == "" {
		return // only run as TestOutboxSurvivesKill's child
	}
	ctx := context.Background()
	nc, err := bus.Connect(ctx, url, bus.ConnectOptions{Name: "outbox-crash-helper"})
	if err != nil {
		t.Fatal(err)
	}
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	a, err := New(Config{Rules: mustRules(t, tcpRule), Now: clk.Now, OutboxDir: dir, PublishTimeout: time.Second}, js, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	crashFeed(ctx, a, clk)
	a.outMu.Lock()
	var ids []string
	for _, q := range a.queue {
		if q.alert != nil {
			ids = append(ids, q.alert.MsgID())
		}
	}
	n := len(a.queue)
	a.outMu.Unlock()
	fmt.Printf("QUEUED %d %s\n", n, strings.Join(ids, ","))
	select {} // until killed
}

// TestOutboxSurvivesKill: an analyzer whose alert publications fail is
// killed (SIGKILL) with changes queued; a new analyzer on the same data
// directory publishes every one of them once the stream is back, and
// restores the alerts' last decided state from the journal. Replaying
// the same journal again (as if the kill came after JetStream stored the
// changes but before the journal said so) stores nothing twice: the
// stream dedups by Nats-Msg-Id.
func TestOutboxSurvivesKill(t *testing.T) {
	ctx := testContext(t)
	b := startBus(t, ctx, false) // no MCIV_ALERTS yet: every publication fails
	dir := filepath.Join(t.TempDir(), "outbox")

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOutboxCrashHelper$")
	cmd.Env = append(os.Environ(), crashEnvURL+"="+b.srv.URL(), crashEnvDir+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		queued int
		ids    []string
	)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "QUEUED" {
			queued, _ = strconv.Atoi(f[1])
			ids = strings.Split(f[2], ",")
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if wantAlerts := crashHosts + crashResolved; len(ids) != wantAlerts || queued <= len(ids) {
		t.Fatalf("the helper queued %d changes, alerts %v; want %d alert changes and their states", queued, ids, wantAlerts)
	}
	journal := filepath.Join(dir, JournalFile)
	saved, err := os.ReadFile(journal)
	if err != nil || len(saved) == 0 {
		t.Fatalf("journal after the kill: %d bytes, %v", len(saved), err)
	}

	// The stream is back; a new analyzer starts on the same directory.
	if err := bus.EnsureStreams(ctx, b.js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	restart := func() (*Analyzer, *prometheus.Registry) {
		t.Helper()
		reg := prometheus.NewRegistry()
		clk := &clock{}
		clk.Set(hostBatch("db-0", 16).Start)
		a, err := New(Config{Rules: mustRules(t, tcpRule), Now: clk.Now, OutboxDir: dir}, b.js, reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Queued(); got != queued {
			t.Fatalf("replayed %d changes from the journal, want %d", got, queued)
		}
		if _, err := a.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := a.Queued(); got != 0 {
			t.Fatalf("%d changes still queued after the flush", got)
		}
		if got := testutil.ToFloat64(a.m.replayed); got != float64(queued) {
			t.Errorf("mciv_analyzer_outbox_replayed_total = %v, want %d", got, queued)
		}
		return a, reg
	}
	checkStream := func(when string) {
		t.Helper()
		alerts, _ := stored(t, ctx, b.js)
		var got []string
		for _, al := range alerts {
			got = append(got, al.MsgID())
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("%s: MCIV_ALERTS holds %v, want each queued change once, in order: %v", when, got, ids)
		}
	}

	a, _ := restart()
	checkStream("after the restart")
	a.mu.Lock()
	active := a.engine.Active()
	a.mu.Unlock()
	if len(active) != 1 || active[0].Firing != crashHosts-crashResolved || active[0].Pending != 0 {
		t.Errorf("restored alerts %+v, want %d firing (the resolved ones gone)", active, crashHosts-crashResolved)
	}
	a.closeOutbox()
	if fi, err := os.Stat(journal); err != nil || fi.Size() != 0 {
		t.Errorf("journal after every change was stored: %v, %v; want empty", fi, err)
	}

	// The same journal once more: nothing is stored twice.
	if err := os.WriteFile(journal, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	a, _ = restart()
	a.closeOutbox()
	checkStream("after replaying the same journal again")
}
