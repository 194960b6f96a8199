package app

import (
	"context"
	"encoding/json"
	"github.com/mciv/mciv/internal/yamltime"
	slacknotify "github.com/mciv/mciv/notifier/slack"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/lossnet"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// metricSum adds up every sample of the named counter or gauge family.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// waitFor polls cond until it holds or ctx ends; it is a bounded wait, not a timing assertion.
func waitFor(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// TestEndToEndRetransmitsToSlack drives the whole skeleton on the real
// kernel: packet loss in a private network namespace makes the kernel
// retransmit, the eBPF collector counts it, the analyzer fires the default
// rule, and the notifier posts to a fake Slack through the real slack-go
// client; when the loss stops the alert resolves.
func TestEndToEndRetransmitsToSlack(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.ExclusiveKernel(t)
	testenv.RequireCommand(t, "ip", "nft")
	testenv.RequireFile(t, "/sys/kernel/btf/vmlinux", "the kernel's BTF, for CO-RE eBPF")
	if err := collector.MountTracefs(); err != nil {
		testenv.Missing(t, "tracefs: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	slack := slacktest.New(t, "xoxb-e2e-token")
	cfg := config.Default()
	cfg.Cluster, cfg.Host = "e2e", "e2e-host"
	cfg.DataDir = t.TempDir()
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Collector.Interval = yamltime.Duration(250 * time.Millisecond)
	cfg.Slack = slacknotify.Section{Token: "xoxb-e2e-token", Channel: "C0NCALL", APIURL: slack.URL()}

	lab, err := lossnet.New(ctx, "mciv-e2e")
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	// The TCP signals come from the lab's namespace only, as a collector
	// per container would see them: other tests' traffic on this host
	// (connect errors, retransmits) raises other alerts, not this one.
	cfg.Collector.NetNS = "/run/netns/" + lab.Name()

	reg := prometheus.NewRegistry()
	ready := make(chan Info, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, Options{Config: cfg, Parts: All, Registry: reg, Console: testWriter{t}, Ready: func(i Info) { ready <- i }})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var info Info
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("Run ended before it was ready: %v", err)
	}
	<-info.Collector.Started()

	// Watch the alerts as published, to compare Slack's text with the measured value.
	nc, err := bus.Connect(ctx, info.NATSURL, bus.ConnectOptions{Name: "e2e-watch"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	alerts := make(chan *wire.Alert, 16)
	if _, err := nc.Subscribe(wire.AlertsWildcard, func(m *nats.Msg) {
		a, err := wire.DecodeAlert(m.Data)
		// Only this test's alert: another test's PostgreSQL on this host
		// may raise a query rule meanwhile.
		if err == nil && a.Rule == "TCPRetransmitRateHigh" {
			alerts <- a
		}
	}); err != nil {
		t.Fatal(err)
	}

	// Garbage on the samples subject is counted and changes nothing else.
	if err := nc.Publish(wire.SamplesSubject(cfg.Cluster, cfg.Host), []byte("not a batch")); err != nil {
		t.Fatal(err)
	}
	if !waitFor(ctx, func() bool { return metricSum(t, reg, "mciv_analyzer_bad_messages_total") == 1 }) {
		t.Fatal("the garbage sample was not counted in mciv_analyzer_bad_messages_total")
	}

	port, err := lab.StartWorkload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Samples reach the analyzer through the embedded NATS.
	if !waitFor(ctx, func() bool { return metricSum(t, reg, "mciv_analyzer_batches_total") >= 4 }) {
		t.Fatal("no sample batches reached the analyzer")
	}
	if err := lab.SetLoss(ctx, 20); err != nil {
		t.Fatal(err)
	}
	t.Logf("loss on: workload port %d", port)

	var firing *wire.Alert
	select {
	case firing = <-alerts:
	case <-ctx.Done():
		t.Fatal("no alert fired under 20% packet loss")
	}
	if firing.State != wire.StateFiring || firing.Rule != "TCPRetransmitRateHigh" || firing.Labels["host"] != "e2e-host" {
		t.Fatalf("first alert: %+v", firing)
	}
	msgs, err := waitOwnMessages(ctx, slack, "TCPRetransmitRateHigh", 1)
	if err != nil {
		t.Fatalf("Slack got no message: %v", err)
	}
	text := msgs[0].Text
	for _, want := range []string{"e2e-host", "TCPRetransmitRateHigh", notifier.FormatValue(firing.Value)} {
		if !strings.Contains(text, want) {
			t.Errorf("Slack message %q does not name %q", text, want)
		}
	}
	if msgs[0].Channel != "C0NCALL" {
		t.Errorf("posted to %q", msgs[0].Channel)
	}

	if err := lab.ClearLoss(ctx); err != nil {
		t.Fatal(err)
	}
	// On resolve the alert's message is updated in place and the change is
	// threaded beneath it.
	msgs, err = waitOwnMessages(ctx, slack, "TCPRetransmitRateHigh", 3)
	if err != nil {
		t.Fatalf("no resolved update after the loss stopped: %v", err)
	}
	upd, reply := msgs[1], msgs[2]
	if upd.Method != "chat.update" || upd.TS != msgs[0].TS {
		t.Errorf("second Slack call is not an update of the alert's message: %+v", upd)
	}
	if !strings.Contains(strings.ToLower(upd.Text), "resolved") || !strings.Contains(upd.Text, "e2e-host") {
		t.Errorf("the updated message does not say resolved on e2e-host: %q", upd.Text)
	}
	if reply.ThreadTS != msgs[0].TS {
		t.Errorf("the state change is not threaded under the alert: %+v", reply)
	}
	if got := metricSum(t, reg, "mciv_analyzer_bad_messages_total"); got != 1 {
		t.Errorf("bad messages = %v, want exactly the one garbage message", got)
	}
	if own := ownMessages(slack.Messages(), "TCPRetransmitRateHigh"); len(own) != 3 {
		b, _ := json.Marshal(own)
		t.Errorf("Slack got %d calls for the alert, want 3 (post, update, thread reply): %s", len(own), b)
	}
}

// ownMessages returns the Slack calls about one rule's alert: the message
// whose text names the rule, its updates and the replies threaded under it.
func ownMessages(all []slacktest.Message, rule string) []slacktest.Message {
	var own []slacktest.Message
	ts := ""
	for _, m := range all {
		switch {
		case ts == "" && m.Method == "chat.postMessage" && m.ThreadTS == "" && strings.Contains(m.Text, rule):
			ts = m.TS
			own = append(own, m)
		case ts != "" && (m.TS == ts || m.ThreadTS == ts):
			own = append(own, m)
		}
	}
	return own
}

// waitOwnMessages waits until Slack has n calls about rule's alert.
func waitOwnMessages(ctx context.Context, slack *slacktest.Server, rule string, n int) ([]slacktest.Message, error) {
	for total := 1; ; total++ {
		all, err := slack.WaitMessages(ctx, total)
		if own := ownMessages(all, rule); len(own) >= n {
			return own, nil
		}
		if err != nil {
			return ownMessages(all, rule), err
		}
		total = len(all)
	}
}

// testWriter sends console alert lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunWithoutDeadline runs the analyzer and notifier the way `mciv up`
// does, with a context that has no deadline, and checks that a published
// batch is evaluated and that Run returns cleanly when cancelled.
func TestRunWithoutDeadline(t *testing.T) {
	cfg := config.Default()
	cfg.Cluster, cfg.Host = "nodl", "nodl-host"
	cfg.DataDir = t.TempDir()
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen = "127.0.0.1:0"
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Parts: Parts{Analyzer: true, Notifier: true}, Registry: reg,
			Ready: func(i Info) { ready <- i }})
	}()
	var info Info
	select {
	case info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run ended before it was ready: %v", err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	nc, err := bus.Connect(wctx, info.NATSURL, bus.ConnectOptions{Name: "nodl"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for seq := uint64(1); ; seq++ {
		b := &wire.Batch{Cluster: "nodl", Host: "nodl-host", Seq: seq, Start: time.Now(), Interval: time.Second,
			Series: []wire.Series{{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}}}
		if err := nc.Publish(wire.SamplesSubject("nodl", "nodl-host"), wire.EncodeBatch(b)); err != nil {
			t.Fatal(err)
		}
		if metricSum(t, reg, "mciv_analyzer_batches_total") >= 1 {
			break
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("Run stopped: %v", err)
		case <-wctx.Done():
			cancel()
			t.Fatal("the analyzer never evaluated a batch")
		case <-time.After(100 * time.Millisecond):
		}
	}
	if info.MetricsAddr == "" {
		t.Error("no metrics address reported")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
