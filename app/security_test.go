package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier"
	"github.com/mciv/mciv/notifier/escalation"
	"github.com/mciv/mciv/notifier/labels"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
	slacknotify "github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/steer"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The adversarial suite: `mciv up` with a trust root (nats.auth), its
// analyzer and notifier running with their issued credentials, and an
// attacker holding some role's credentials (or none). Every attack is
// refused by the server, changes nothing, and each role still does its job
// with the same credentials (positive controls).

type trustLab struct {
	trust   *auth.Trust
	url     string
	reg     *prometheus.Registry
	console *testenv.LockedBuffer
}

const labCluster = "lab"

// startTrustLab runs the analyzer and notifier of `mciv up` with a trust
// root; one rule fires on any retransmit. tune changes the configuration
// first.
func startTrustLab(t *testing.T, tune ...func(*config.Config)) *trustLab {
	t.Helper()
	dir := t.TempDir()
	trust, err := auth.Init(filepath.Join(dir, "auth"), auth.InitOptions{MaxStore: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(`groups:
  - name: lab
    rules:
      - alert: LabRetransmits
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 1}
        labels: {severity: warning}
        annotations: {summary: "retransmits on {{ .Labels.host }}"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Cluster, cfg.Host = labCluster, "core-1"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.NATS.Auth = filepath.Join(dir, "auth")
	cfg.Metrics.Listen = ""
	cfg.Analyzer.Rules = []string{rulesPath}
	off := false
	cfg.Collector.Enabled = &off
	for _, f := range tune {
		f(&cfg)
	}
	l := &trustLab{trust: trust, reg: prometheus.NewRegistry(), console: &testenv.LockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Parts: Parts{Analyzer: true, Notifier: true}, Registry: l.reg,
			Logger:  slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Console: l.console, Ready: func(i Info) { ready <- i }})
	}()
	select {
	case info := <-ready:
		l.url = info.NATSURL
	case err := <-done:
		cancel()
		t.Fatalf("Run ended before it was ready: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	return l
}

// roleConn is a client holding one role's credentials, with the
// permission violations the server reports to it.
type roleConn struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	denied chan error
}

func (l *trustLab) connect(t *testing.T, role auth.Role, name string) *roleConn {
	t.Helper()
	c, err := l.trust.Issue(auth.Identity{Role: role, Cluster: labCluster, Name: name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rc := &roleConn{denied: make(chan error, 64)}
	nc, err := nats.Connect(l.url, nats.UserJWTAndSeed(c.JWT, string(c.Seed)),
		nats.CustomInboxPrefix(auth.InboxPrefix(role, labCluster, name)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case rc.denied <- err:
				default:
				}
			}
		}))
	if err != nil {
		t.Fatalf("%s connect: %v", role, err)
	}
	t.Cleanup(nc.Close)
	rc.nc = nc
	rc.js, _ = jetstream.New(nc)
	return rc
}

// refused publishes data on subject and waits for the server to refuse it.
func (c *roleConn) refused(t *testing.T, subject string, data []byte) {
	t.Helper()
	if err := c.nc.Publish(subject, data); err != nil {
		t.Fatal(err)
	}
	c.wantDenied(t, "publish", subject)
}

func (c *roleConn) wantDenied(t *testing.T, op, subject string) {
	t.Helper()
	c.wantDeniedMatch(t, op, func(s string) bool { return s == subject }, subject)
}

// wantDeniedMatch waits for the server to refuse op on a subject that
// match accepts (what names it in a failure).
func (c *roleConn) wantDeniedMatch(t *testing.T, op string, match func(subject string) bool, what string) {
	t.Helper()
	_ = c.nc.Flush()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case err := <-c.denied:
			msg := err.Error()
			if !strings.Contains(strings.ToLower(msg), op) {
				continue
			}
			if i := strings.Index(msg, `"`); i >= 0 {
				if j := strings.Index(msg[i+1:], `"`); j >= 0 && match(msg[i+1:i+1+j]) {
					return
				}
			}
		case <-deadline:
			t.Fatalf("the server did not refuse %s to %s", op, what)
		}
	}
}

// admin is an observer with every right, to see what happened.
func (l *trustLab) admin(t *testing.T) *roleConn { return l.connect(t, auth.Admin, "observer") }

func TestAttackNoCredentialsRefused(t *testing.T) {
	l := startTrustLab(t)
	nc, err := nats.Connect(l.url, nats.NoReconnect())
	if err == nil {
		nc.Close()
		t.Fatal("connected to the authenticated bus without credentials")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("connect without credentials: %v, want an authorization error", err)
	}
	// A credential from another trust root is refused too.
	other, err := auth.Init(filepath.Join(t.TempDir(), "other"), auth.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := other.Issue(auth.Identity{Role: auth.Admin, Cluster: labCluster, Name: "mallory"}, 0)
	if nc, err := nats.Connect(l.url, nats.UserJWTAndSeed(c.JWT, string(c.Seed)), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a credential of another trust root was accepted")
	}
}

func batch(host string, seq uint64, retx float64) []byte {
	return wire.EncodeBatch(&wire.Batch{Cluster: labCluster, Host: host, Seq: seq, Start: time.Now(), Interval: time.Second,
		Series: []wire.Series{{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: retx}}})
}

// TestAttackForgedSamplesAndPositiveControl: a collector cannot speak for
// another host nor listen to the fleet; with the same credentials its own
// samples reach the analyzer, whose alert reaches the notifier's console.
func TestAttackForgedSamplesAndPositiveControl(t *testing.T) {
	l := startTrustLab(t)
	col := l.connect(t, auth.Collector, "db-1")
	obs := l.admin(t)
	var (
		mu   sync.Mutex
		seen []string
	)
	if _, err := obs.nc.Subscribe(wire.SamplesWildcard, func(m *nats.Msg) {
		mu.Lock()
		seen = append(seen, m.Subject)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	_ = obs.nc.Flush()

	col.refused(t, wire.SamplesSubject(labCluster, "db-2"), batch("db-2", 1, 100))
	col.refused(t, wire.EventsSubject(labCluster, "db-2"), []byte(`{}`))
	col.refused(t, wire.SamplesSubject("other", "db-1"), batch("db-1", 1, 100))
	if _, err := col.nc.Subscribe(wire.SamplesWildcard, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	col.wantDenied(t, "subscription", wire.SamplesWildcard)
	if _, err := col.nc.Subscribe("_INBOX.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	col.wantDenied(t, "subscription", "_INBOX.>")

	// Positive control: its own host's samples flow and fire the rule.
	for seq := uint64(1); ; seq++ {
		if err := col.nc.Publish(wire.SamplesSubject(labCluster, "db-1"), batch("db-1", seq, 50)); err != nil {
			t.Fatal(err)
		}
		_ = col.nc.Flush()
		if strings.Contains(l.console.String(), "db-1") {
			break
		}
		if seq > 100 {
			t.Fatalf("no alert on the console after %d batches from db-1; console: %q", seq, l.console.String())
		}
		time.Sleep(200 * time.Millisecond) // pacing the collector's interval, not a timing assertion
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if s != wire.SamplesSubject(labCluster, "db-1") {
			t.Errorf("a forged sample passed: %s", s)
		}
	}
	if strings.Contains(l.console.String(), "db-2") {
		t.Errorf("an alert names the host db-2 nobody may speak for: %q", l.console.String())
	}
}

// TestAttackForgedAlertAckSilence: only the analyzer publishes alerts,
// only the notifier and the operator publish acks and write silences.
func TestAttackForgedAlertAckSilence(t *testing.T) {
	l := startTrustLab(t)
	alert := []byte(`{"v":1,"rule":"Forged","state":"firing","labels":{"cluster":"lab","severity":"critical"},"fingerprint":"f"}`)
	ack := []byte(`{"v":1,"fingerprint":"f","cluster":"lab","action":"acknowledge","id":"x"}`)
	for _, role := range []auth.Role{auth.Collector, auth.Notifier, auth.Actuator, auth.Operator} {
		c := l.connect(t, role, "m-"+string(role))
		c.refused(t, wire.AlertSubject(labCluster, "Forged"), alert)
	}
	for _, role := range []auth.Role{auth.Collector, auth.Analyzer, auth.Actuator} {
		c := l.connect(t, role, "m-"+string(role))
		c.refused(t, wire.AckSubject(labCluster), ack)
		c.refused(t, "$KV."+auth.SilencesBucket+".forged", []byte(`{"id":"forged"}`))
	}
	obs := l.admin(t)
	for _, stream := range []string{bus.AlertsStream, bus.AcksStream} {
		st, err := obs.js.Stream(t.Context(), stream)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.CachedInfo().State.Msgs; n != 0 {
			t.Errorf("stream %s holds %d messages after forged publications", stream, n)
		}
	}
	// Positive controls: the operator silences and acks, the analyzer may publish alerts.
	op := l.connect(t, auth.Operator, "alice")
	st, err := silence.Open(t.Context(), op.js, 1, nil)
	if err != nil {
		t.Fatalf("operator opens silences: %v", err)
	}
	ms, _ := labels.ParseAll([]string{"host=db-1"})
	if _, err := st.Add(t.Context(), silence.Silence{Matchers: ms, StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour), CreatedBy: "alice"}); err != nil {
		t.Fatalf("operator adds a silence: %v", err)
	}
	if _, err := op.js.Publish(t.Context(), wire.AckSubject(labCluster), ack, jetstream.WithMsgID("op-ack")); err != nil {
		t.Fatalf("operator acks: %v", err)
	}
	an := l.connect(t, auth.Analyzer, "an-2")
	if _, err := an.js.Publish(t.Context(), wire.AlertSubject(labCluster, "Probe"), alert, jetstream.WithMsgID("probe")); err != nil {
		t.Fatalf("analyzer publishes an alert: %v", err)
	}
}

// TestAttackKVTampering: each bucket is written only by its owners.
func TestAttackKVTampering(t *testing.T) {
	l := startTrustLab(t)
	owners := map[string][]auth.Role{
		auth.AlertStateBucket:    {auth.Analyzer},
		auth.NflogBucket:         {auth.Notifier},
		auth.SilencesBucket:      {auth.Notifier, auth.Operator},
		auth.EscalationsBucket:   {auth.Notifier},
		auth.FailoverStateBucket: {auth.Actuator, auth.Operator},
		auth.FailoverLeaseBucket: {auth.Actuator},
	}
	conns := map[auth.Role]*roleConn{}
	for _, r := range []auth.Role{auth.Collector, auth.Analyzer, auth.Notifier, auth.Actuator, auth.Operator} {
		conns[r] = l.connect(t, r, "t-"+string(r))
	}
	for bucket, own := range owners {
		for r, c := range conns {
			if contains(own, r) {
				continue
			}
			c.refused(t, "$KV."+bucket+".lease.lab", []byte("tampered"))
			c.refused(t, "$JS.API.STREAM.UPDATE.KV_"+bucket, []byte(`{}`))
		}
	}
	// Positive controls: every owner opens its buckets with its credentials.
	ctx := t.Context()
	if _, err := nflog.Open(ctx, conns[auth.Notifier].js, nflog.Options{}); err != nil {
		t.Errorf("notifier opens the nflog: %v", err)
	}
	if _, err := escalation.NewKVStore(ctx, conns[auth.Notifier].js, 1); err != nil {
		t.Errorf("notifier opens escalations: %v", err)
	}
	if _, err := silence.Open(ctx, conns[auth.Notifier].js, 1, nil); err != nil {
		t.Errorf("notifier opens silences: %v", err)
	}
	store, err := actuator.OpenStore(ctx, conns[auth.Actuator].js, actuator.DefaultKVBucket, time.Minute, 1)
	if err != nil {
		t.Fatalf("actuator opens its store: %v", err)
	}
	if _, err := store.Acquire(ctx, labCluster, actuator.LeaseInfo{Holder: "t", At: time.Now()}); err != nil {
		t.Errorf("actuator takes the lease: %v", err)
	}
	if _, err := actuator.OpenState(ctx, conns[auth.Operator].js, actuator.DefaultKVBucket); err != nil {
		t.Errorf("operator opens the failover state (pause): %v", err)
	}
	act := conns[auth.Actuator]
	if _, err := act.js.CreateOrUpdateConsumer(ctx, bus.AlertsStream, jetstream.ConsumerConfig{Durable: actuator.DefaultDurable, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Errorf("actuator creates its alerts consumer: %v", err)
	}
	if _, err := act.js.OrderedConsumer(ctx, bus.AcksStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.AckSubject(labCluster)}}); err != nil {
		t.Errorf("actuator reads acks: %v", err)
	}
	if _, err := act.js.Publish(ctx, wire.ActionSubject(labCluster), []byte(`{}`), jetstream.WithMsgID("a1")); err != nil {
		t.Errorf("actuator publishes an audit record: %v", err)
	}
}

// TestAttackStreamAndBucketDeletion: no client role deletes or purges a
// stream or bucket, nor changes a shared stream's configuration.
func TestAttackStreamAndBucketDeletion(t *testing.T) {
	l := startTrustLab(t)
	streams := []string{bus.AlertsStream, bus.ActionsStream, bus.AcksStream, "KV_" + auth.SilencesBucket, "KV_" + auth.NflogBucket, "KV_" + auth.AlertStateBucket}
	for _, r := range []auth.Role{auth.Collector, auth.Analyzer, auth.Notifier, auth.Actuator, auth.Operator} {
		c := l.connect(t, r, "d-"+string(r))
		for _, s := range streams {
			c.refused(t, "$JS.API.STREAM.DELETE."+s, nil)
			c.refused(t, "$JS.API.STREAM.PURGE."+s, nil)
		}
		for _, s := range streams[:3] {
			c.refused(t, "$JS.API.STREAM.UPDATE."+s, []byte(`{}`))
		}
	}
	obs := l.admin(t)
	for _, s := range streams[:3] {
		if _, err := obs.js.Stream(t.Context(), s); err != nil {
			t.Errorf("stream %s after the attempts: %v", s, err)
		}
	}
}

// TestTrustNamesAgree: the names the permissions grant are the names the
// parts use.
func TestTrustNamesAgree(t *testing.T) {
	for got, want := range map[string]string{
		auth.AlertsStream: bus.AlertsStream, auth.ActionsStream: bus.ActionsStream, auth.AcksStream: bus.AcksStream,
		auth.AlertStateBucket: analyzer.StateBucket, auth.NflogBucket: nflog.Bucket, auth.SilencesBucket: silence.Bucket,
		auth.EscalationsBucket: escalation.Bucket, auth.FailoverStateBucket: actuator.DefaultKVBucket + "_state",
		auth.FailoverLeaseBucket: actuator.DefaultKVBucket + "_lease", auth.NotifierDurable: notifier.DefaultDurable,
		auth.SlackAcksDurable: slacknotify.AcksDurable, auth.SlackActionsDurable: slacknotify.ActionsDurable,
		auth.EscalationDurable: escalation.DefaultAckDurable, auth.ActuatorDurable: actuator.DefaultDurable,
		auth.InputStream: bus.InputStream, auth.PartitionsBucket: analyzer.CheckpointBucket, auth.DetectorsBucket: analyzer.DetectorsBucket,
		auth.PartitionDurablePrefix: analyzer.PartitionDurablePrefix, auth.RoutesBucket: steer.DefaultBucket, auth.SteerLeaseBucket: steer.DefaultLeaseBucket,
	} {
		if got != want {
			t.Errorf("auth names %q, the part uses %q", got, want)
		}
	}
}

func contains(rs []auth.Role, r auth.Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}
