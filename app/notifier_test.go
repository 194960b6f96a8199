package app

import (
	"bytes"
	"context"
	slacknotify "github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/voice"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestNotifierWiring runs the notifier part as `mciv up` wires it — Slack
// groups, charts from samples, the thread feed and the interactivity
// endpoint — against a fake Slack, without root.
func TestNotifierWiring(t *testing.T) {
	testenv.RequireCommand(t, "espeak-ng", "sox")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "wiring-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	slack := slacktest.New(t, "xoxb-wiring")
	cfg := config.Default()
	cfg.Host = "wiring-host"
	cfg.DataDir = t.TempDir() // the voice clips; not into the source tree
	cfg.Slack = slacknotify.Section{Token: "xoxb-wiring", Channel: "C0NCALL", APIURL: slack.URL()}
	cfg.Slack.Interactivity.Listen = freeAddr(t)
	cfg.Slack.Interactivity.SigningSecret = "wiring-secret"

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	startPart := func(part string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(runCtx); err != nil {
				t.Errorf("%s: %v", part, err)
			}
		})
	}
	defer func() {
		stop()
		wg.Wait()
	}()
	consoleOut := &testenv.LockedBuffer{}
	parts, err := startNotifier(ctx, cfg, consoleOut, nc, js, ackTrust{}, prometheus.NewRegistry(), nil, startPart)
	if err != nil {
		t.Fatal(err)
	}
	if parts.Threads == nil {
		t.Error("no ThreadPoster with Slack configured")
	}

	// Samples for the chart, then the alert.
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i := range 30 {
		b := &wire.Batch{Cluster: "default", Host: "db-1", Seq: uint64(i), Start: t0.Add(time.Duration(i) * time.Second), Interval: time.Second,
			Series: []wire.Series{{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: float64(1 + i/20*10)}}}
		if err := nc.Publish(wire.SamplesSubject("default", "db-1"), wire.EncodeBatch(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	a := &wire.Alert{Fingerprint: "fp-wiring", Rule: "TCPRetransmitRateHigh", State: wire.StateFiring,
		Labels: map[string]string{"cluster": "default", "host": "db-1", "severity": "critical"}, Signal: "tcp_retransmits_total", Stat: "rate",
		Value: 11, Threshold: 5, Baseline: 1, StartsAt: t0.Add(25 * time.Second), At: t0.Add(25 * time.Second)}
	data, _ := wire.EncodeAlert(a)
	if _, err := js.Publish(ctx, wire.AlertSubject("default", a.Rule), data, jetstream.WithMsgID(a.MsgID())); err != nil {
		t.Fatal(err)
	}
	msgs, err := slack.WaitMessages(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msgs[0].Text, "db-1") || !strings.Contains(msgs[0].BlockText(), "Acknowledge") {
		t.Errorf("group message: %q\n%s", msgs[0].Text, msgs[0].BlockText())
	}

	// Acknowledge with the button.
	var e struct{ key string }
	// The button's value is the group key; read it from the message's blocks.
	bt := string(msgs[0].Blocks)
	i := strings.Index(bt, `"value":"`)
	if i < 0 {
		t.Fatalf("no button value in %s", bt)
	}
	rest := bt[i+len(`"value":"`):]
	e.key = rest[:strings.IndexByte(rest, '"')]
	waitThreadFeed(t, ctx, js)
	body := slacktest.ButtonPress{UserID: "U123", ChannelID: msgs[0].ChannelID, MessageTS: msgs[0].TS, ActionID: "mciv_ack", Value: e.key}.Body()
	url := "http://" + cfg.Slack.Interactivity.Listen + "/slack/interactivity"
	// startNotifier listened before it returned: no wait for the server.
	status, _, err := slacktest.Post(ctx, url, "wiring-secret", time.Now(), body)
	if err != nil || status != http.StatusOK {
		t.Fatalf("button press: %d %v", status, err)
	}
	if status, _, _ := slacktest.Post(ctx, url, "forged", time.Now(), body); status != http.StatusUnauthorized {
		t.Errorf("forged press: %d", status)
	}
	cur := func() []slacktest.Message { return slack.Current() }
	if !waitFor(ctx, func() bool {
		c := cur()
		return len(c) >= 2 && strings.Contains(c[0].BlockText(), "Acknowledged by <@U123>")
	}) {
		t.Fatalf("the acknowledgement never reached Slack: %+v", cur())
	}
	// Two files reach the thread: the chart and, the alert being critical,
	// the spoken clip (espeak-ng for real; voice waits for the thread).
	files, err := slack.WaitFiles(ctx, 2)
	if err != nil {
		t.Fatalf("want a chart and a voice clip in the thread: %v", err)
	}
	var png, ogg int
	for _, f := range files {
		if f.ThreadTS != msgs[0].TS {
			t.Errorf("file %s not in the alert's thread", f.Filename)
		}
		switch {
		case bytes.HasPrefix(f.Data, []byte("\x89PNG\r\n\x1a\n")):
			png++
		case bytes.HasPrefix(f.Data, []byte("OggS")):
			ogg++
		}
	}
	if png != 1 || ogg != 1 {
		t.Errorf("thread files: %d PNG charts and %d Ogg clips, want one of each", png, ogg)
	}
	if out := consoleOut.String(); !strings.Contains(out, "voice: CRITICAL TCPRetransmitRateHigh spoken by espeak") {
		t.Errorf("console does not give the clip's path:\n%s", out)
	}
}

func TestBuildVoice(t *testing.T) {
	testenv.RequireCommand(t, "espeak-ng", "sox")
	dir := t.TempDir()
	var out bytes.Buffer
	n, closer, err := buildVoice(t.Context(), voice.Config{Format: "wav"}, voiceSetup{DataDir: dir, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	now := time.Now()
	a := &wire.Alert{Fingerprint: "0123456789abcdef0123", Rule: "QueryLatency", State: wire.StateFiring,
		Labels: map[string]string{"severity": "critical", "host": "billing-2", "cluster": "payments"},
		Signal: "db_query_seconds", Stat: "p99", Value: 0.85, Threshold: 0.5, Baseline: 0.14, StartsAt: now, At: now}
	if err := n.Notify(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "voice", "clips", "*.wav"))
	cached, _ := filepath.Glob(filepath.Join(dir, "voice", "cache", "*"))
	if len(matches) != 1 || !strings.Contains(out.String(), matches[0]) || len(cached) == 0 {
		t.Errorf("clips %v, cache %v, console %q", matches, cached, out.String())
	}
	if _, _, err := buildVoice(t.Context(), voice.Config{Engines: "polly"}, voiceSetup{DataDir: dir}); err == nil {
		t.Error("buildVoice accepted an unknown engine")
	}
}

func TestNotifierSocketModeWiring(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "socket-wiring-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	slack := slacktest.New(t, "xoxb-wiring")
	slack.EnableSocketMode("xapp-1-wiring")
	cfg := config.Default()
	cfg.Host = "wiring-host"
	cfg.DataDir = t.TempDir()
	cfg.Slack = slacknotify.Section{Token: "xoxb-wiring", Channel: "C0NCALL", APIURL: slack.URL()}
	cfg.Slack.SocketMode.AppToken = "xapp-1-wiring" // no interactivity endpoint at all

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	startPart := func(part string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(runCtx); err != nil {
				t.Errorf("%s: %v", part, err)
			}
		})
	}
	defer func() {
		stop()
		wg.Wait()
	}()
	if _, err := startNotifier(ctx, cfg, nil, nc, js, ackTrust{}, prometheus.NewRegistry(), nil, startPart); err != nil {
		t.Fatal(err)
	}
	a := &wire.Alert{Fingerprint: "fp-socket", Rule: "DiskLatencyHigh", State: wire.StateFiring,
		Labels: map[string]string{"cluster": "default", "host": "db-1", "severity": "warning"}, Value: 11, Threshold: 5,
		StartsAt: time.Now(), At: time.Now()}
	data, _ := wire.EncodeAlert(a)
	if _, err := js.Publish(ctx, wire.AlertSubject("default", a.Rule), data, jetstream.WithMsgID(a.MsgID())); err != nil {
		t.Fatal(err)
	}
	msgs, err := slack.WaitMessages(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	bt := string(msgs[0].Blocks)
	i := strings.Index(bt, `"value":"`)
	if i < 0 {
		t.Fatalf("no button value in %s", bt)
	}
	rest := bt[i+len(`"value":"`):]
	key := rest[:strings.IndexByte(rest, '"')]
	waitThreadFeed(t, ctx, js)
	if _, err := slack.Press(ctx, slacktest.ButtonPress{UserID: "U123", ChannelID: msgs[0].ChannelID, MessageTS: msgs[0].TS, ActionID: "mciv_ack", Value: key}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(ctx, func() bool {
		c := slack.Current()
		return len(c) >= 2 && strings.Contains(c[0].BlockText(), "Acknowledged by <@U123>")
	}) {
		t.Fatalf("the acknowledgement over Socket Mode never reached Slack: %+v", slack.Current())
	}
}

// waitThreadFeed waits until the Slack thread feed's consumer of MCIV_ACKS
// exists: it starts at new messages, so a press before it would be missed.
func waitThreadFeed(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	if !waitFor(ctx, func() bool {
		_, err := js.Consumer(ctx, bus.AcksStream, slacknotify.AcksDurable)
		return err == nil
	}) {
		t.Fatal("the Slack thread feed's consumer never appeared")
	}
}
