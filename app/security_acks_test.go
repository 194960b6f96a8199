package app

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/failover/actuator"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	slacknotify "github.com/mciv/mciv/notifier/slack"
	"github.com/mciv/mciv/notifier/slack/slacktest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
)

// signerOf signs as a fresh credential of role named name.
func (l *trustLab) signerOf(t *testing.T, role auth.Role, cluster, name string) *auth.Signer {
	t.Helper()
	c, err := l.trust.Issue(auth.Identity{Role: role, Cluster: cluster, Name: name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSigner(c.JWT, c.Seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publishAck publishes a on its cluster's subject through c, signed by s
// (nil: unsigned).
func (c *roleConn) publishAck(t *testing.T, s *auth.Signer, a wire.Ack) {
	t.Helper()
	data, err := wire.EncodeAck(&a)
	if err != nil {
		t.Fatal(err)
	}
	m := &nats.Msg{Subject: wire.AckSubject(labCluster), Data: data}
	if err := s.Sign(m); err != nil {
		t.Fatal(err)
	}
	if _, err := c.js.PublishMsg(t.Context(), m, jetstream.WithMsgID(a.ID)); err != nil {
		t.Fatalf("publish ack %s: %v", a.ID, err)
	}
}

// counterValue reads one series of a counter from the lab's registry.
func (l *trustLab) counterValue(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := l.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == value {
			return true
		}
	}
	return false
}

// streamRecords decodes every message of stream on subject.
func streamRecords[T any](t *testing.T, js jetstream.JetStream, stream, subject string, decode func([]byte) (T, error)) []T {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for {
		msgs, err := cons.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range msgs.Messages() {
			got++
			if v, err := decode(m.Data()); err == nil {
				out = append(out, v)
			}
		}
		if got == 0 {
			return out
		}
	}
}

// TestAttackForgedResolve: with the lab's analyzer and notifier on their
// issued credentials, a Resolve the notifier did not make for a person
// (unsigned from the notifier's credentials, an operator in a Slack user's
// name, an operator of another cluster) is refused, counted in
// mciv_analyzer_acks_refused_total, audited on mciv.actions.lab.resolve,
// and the alert stays firing. An operator's signed `mciv ack --resolve` in
// its own name ends it (positive control).
func TestAttackForgedResolve(t *testing.T) {
	l := startTrustLab(t)
	col := l.connect(t, auth.Collector, "db-1")
	obs := l.admin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// Fire the rule on db-1.
	var fp string
	for seq := uint64(1); fp == ""; seq++ {
		if err := col.nc.Publish(wire.SamplesSubject(labCluster, "db-1"), batch("db-1", seq, 50)); err != nil {
			t.Fatal(err)
		}
		_ = col.nc.Flush()
		for _, a := range streamRecords(t, obs.js, bus.AlertsStream, wire.AlertsWildcard, wire.DecodeAlert) {
			if a.State == wire.StateFiring && a.Labels["host"] == "db-1" {
				fp = a.Fingerprint
			}
		}
		if seq > 100 {
			t.Fatal("the rule never fired")
		}
		time.Sleep(200 * time.Millisecond) // pacing the collector's interval, not a timing assertion
	}
	resolved := func() []*wire.Alert {
		var out []*wire.Alert
		for _, a := range streamRecords(t, obs.js, bus.AlertsStream, wire.AlertsWildcard, wire.DecodeAlert) {
			if a.Fingerprint == fp && a.Annotations[analyzer.AnnotationResolvedBy] != "" {
				out = append(out, a)
			}
		}
		return out
	}
	resolve := func(id, by, via string) wire.Ack {
		return wire.Ack{Fingerprint: fp, Cluster: labCluster, Action: wire.AckResolve, By: by, Via: via, At: time.Now(), ID: id}
	}
	notifierConn := l.connect(t, auth.Notifier, "core-2")
	op := l.connect(t, auth.Operator, "mallory")
	for _, tc := range []struct {
		name   string
		c      *roleConn
		s      *auth.Signer
		ack    wire.Ack
		reason string
	}{
		{"unsigned from the notifier's credentials", notifierConn, nil, resolve("unsigned", "U123", "slack"), auth.AckUnsigned},
		{"an operator in a Slack user's name", op, l.signerOf(t, auth.Operator, labCluster, "mallory"), resolve("impersonation", "U123", "slack"), auth.AckImpersonation},
		{"an operator of another cluster", op, l.signerOf(t, auth.Operator, "other", "mallory"), resolve("other-cluster", "mallory", "cli"), auth.AckCluster},
	} {
		before := l.counterValue(t, "mciv_analyzer_acks_refused_total", "reason", tc.reason)
		tc.c.publishAck(t, tc.s, tc.ack)
		if !waitFor(ctx, func() bool {
			return l.counterValue(t, "mciv_analyzer_acks_refused_total", "reason", tc.reason) > before
		}) {
			t.Fatalf("%s: not refused as %s", tc.name, tc.reason)
		}
	}
	var audits int
	if !waitFor(ctx, func() bool {
		audits = 0
		for _, a := range streamRecords(t, obs.js, bus.ActionsStream, wire.ResolveActionSubject(labCluster), wire.DecodeAction) {
			if a.Decision == "refused" && a.Fingerprint == fp {
				audits++
			}
		}
		return audits == 3
	}) {
		t.Errorf("%d refused resolves audited, want 3", audits)
	}
	if r := resolved(); len(r) != 0 {
		t.Fatalf("a forged resolve ended the alert: resolved_by %q", r[0].Annotations[analyzer.AnnotationResolvedBy])
	}

	// Positive control: the operator's own signed resolve (mciv ack --resolve).
	alice := l.connect(t, auth.Operator, "alice")
	alice.publishAck(t, l.signerOf(t, auth.Operator, labCluster, "alice"), resolve("alice", "alice", "cli"))
	var r []*wire.Alert
	if !waitFor(ctx, func() bool { r = resolved(); return len(r) > 0 }) {
		t.Fatal("the operator's signed resolve did not end the alert")
	}
	if got := r[0].Annotations[analyzer.AnnotationResolvedBy]; got != "cli:alice" || r[0].State != wire.StateResolved {
		t.Errorf("resolved %s by %q", r[0].State, got)
	}
	// The console shows the refusals, never a forged ack as made.
	for _, line := range strings.Split(l.console.String(), "\n") {
		if strings.HasPrefix(line, "ACK") && !strings.Contains(line, "by alice via cli") {
			t.Errorf("the console shows a forged ack as made: %q", line)
		}
	}
}

// labDriver is a failover.Driver over a fixed topology: db-1 leads,
// db-2 and db-3 replicate. It records switchovers.
type labDriver struct {
	mu       sync.Mutex
	switches []failover.Request
}

func (d *labDriver) Name() string { return "lab" }

func (d *labDriver) Topology(context.Context) (failover.Topology, error) {
	return failover.Topology{Cluster: labCluster, Members: []failover.Member{
		{Name: "db-1", Role: failover.RoleLeader, State: "running", Host: "10.0.0.1", Port: 5432, Timeline: 4},
		{Name: "db-2", Role: failover.RoleReplica, State: "streaming", Host: "10.0.0.2", Port: 5432, Timeline: 4},
		{Name: "db-3", Role: failover.RoleReplica, State: "streaming", Host: "10.0.0.3", Port: 5432, Timeline: 4, LagBytes: 100},
	}}, nil
}

func (d *labDriver) Switchover(_ context.Context, req failover.Request) (failover.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.switches = append(d.switches, req)
	return failover.Result{Driver: "lab", To: req.To, NewLeader: req.To, Outcome: failover.OutcomeSucceeded}, nil
}

func (d *labDriver) Failover(context.Context, failover.Request) (failover.Result, error) {
	return failover.Result{}, failover.ErrInvalidRequest
}

func (d *labDriver) Switches() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.switches)
}

// approveButton finds the Approve button of a pending failover in Slack:
// its message and its value ("<fingerprint> <cluster> <nonce>").
func approveButton(msgs []slacktest.Message) (slacktest.Message, string, bool) {
	for _, m := range msgs {
		b := string(m.Blocks)
		i := strings.Index(b, slacknotify.ActionApprove)
		if i < 0 {
			continue
		}
		j := strings.Index(b[i:], `"value":"`)
		if j < 0 {
			continue
		}
		rest := b[i+j+len(`"value":"`):]
		return m, rest[:strings.IndexByte(rest, '"')], true
	}
	return slacktest.Message{}, "", false
}

// TestAttackApprovalThroughSlack: mciv up's notifier (its Slack
// interaction endpoint, on the notifier's issued credentials) and an
// actuator on its own credentials, on the permissioned bus. The pending
// failover's Approve button reaches Slack; an operator publishing the
// button's approval in the listed approver's name, signed with its own
// key, and an unlisted user's press are refused, counted and audited, and
// switch nothing; the listed approver's press through the fake Slack
// switches over, signed by the notifier.
func TestAttackApprovalThroughSlack(t *testing.T) {
	slack := slacktest.New(t, "xoxb-lab")
	listen := freeAddr(t)
	l := startTrustLab(t, func(c *config.Config) {
		c.Slack = slacknotify.Section{Token: "xoxb-lab", Channel: "C0NCALL", APIURL: slack.URL()}
		c.Slack.Interactivity.Listen = listen
		c.Slack.Interactivity.SigningSecret = "lab-secret"
	})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	v, err := auth.NewVerifier(l.trust.AccountJWT)
	if err != nil {
		t.Fatal(err)
	}
	drv := &labDriver{}
	decs := make(chan wire.Action, 32)
	ac := l.connect(t, auth.Actuator, "core-1")
	act, err := actuator.New(actuator.Options{
		Config: actuator.Config{Enabled: true, Approvers: []string{"U123"},
			Rules: map[string]actuator.Policy{"LabRetransmits": {When: actuator.WhenPrimary, Approval: true}}},
		JS: ac.js, Drivers: map[string]failover.Driver{labCluster: drv}, Holder: "lab-actuator",
		Verifier: v, Secured: true, OnDecision: func(a wire.Action) { decs <- a },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := act.Open(ctx); err != nil {
		t.Fatal(err)
	}
	// db-2 and db-3 see the primary degraded; db-1 still reports.
	now := time.Now()
	for i := range 3 {
		at := now.Add(time.Duration(i-3) * time.Second)
		for _, host := range []string{"db-1", "db-2", "db-3"} {
			b := &wire.Batch{Cluster: labCluster, Host: host, Start: at, Interval: time.Second,
				Series: []wire.Series{{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}}}
			if host != "db-1" {
				b.Series = append(b.Series, wire.Series{Signal: "tcp_retransmits_total", Kind: wire.KindCounter,
					Labels: []wire.Label{{Name: "peer", Value: "10.0.0.1:5432"}}, Value: 7})
			}
			act.Observe(b)
		}
	}
	// The alert, as the analyzer would publish it, reaches Slack.
	al := &wire.Alert{Fingerprint: "fp-approve", Rule: "LabRetransmits", State: wire.StateFiring,
		Labels: map[string]string{"cluster": labCluster, "host": "db-1", "severity": "critical", "alertname": "LabRetransmits"},
		Signal: "tcp_retransmits_total", Stat: "rate", Value: 50, Threshold: 1, StartsAt: now.Add(-time.Minute), At: now}
	data, _ := wire.EncodeAlert(al)
	an := l.connect(t, auth.Analyzer, "core-1")
	if _, err := an.js.Publish(ctx, wire.AlertSubject(labCluster, al.Rule), data, jetstream.WithMsgID(al.MsgID())); err != nil {
		t.Fatal(err)
	}
	if _, err := slack.WaitMessages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if !act.Track(al) {
		t.Fatal("the alert is not a failover alert")
	}
	done := make(chan wire.Action, 1)
	go func() { done <- act.Handle(ctx, al) }()
	var (
		btnMsg slacktest.Message
		value  string
	)
	if !waitFor(ctx, func() bool {
		var ok bool
		btnMsg, value, ok = approveButton(slack.Current())
		return ok
	}) {
		t.Fatalf("no Approve button in Slack: %+v", slack.Current())
	}
	fp, rest, _ := strings.Cut(value, " ")
	_, nonce, _ := strings.Cut(rest, " ")
	if fp != al.Fingerprint || nonce == "" {
		t.Fatalf("button value %q", value)
	}
	refusal := func(what, reason string) {
		t.Helper()
		for {
			select {
			case d := <-decs:
				if d.Decision == actuator.DecisionPendingApproval {
					continue
				}
				if d.Decision != actuator.DecisionApprovalRefused || d.Evidence["reason"] != reason {
					t.Fatalf("%s: decision %s %v, want %s refused", what, d.Decision, d.Evidence, reason)
				}
				if act.Refused(reason) < 1 || drv.Switches() != 0 {
					t.Fatalf("%s: counted %v, %d switchovers", what, act.Refused(reason), drv.Switches())
				}
				return
			case <-ctx.Done():
				t.Fatalf("%s: no decision", what)
			}
		}
	}
	// An operator who read the nonce approves in U123's name, signed with
	// its own key.
	op := l.connect(t, auth.Operator, "mallory")
	op.publishAck(t, l.signerOf(t, auth.Operator, labCluster, "mallory"), wire.Ack{Fingerprint: fp, Cluster: labCluster,
		Action: wire.AckApprove, By: "U123", Via: "slack", At: time.Now(), ID: "forged", Nonce: nonce})
	// (operator_approvals is off: the operator role may not approve at all.)
	refusal("an operator in U123's name", actuator.RefusedRole)

	url := "http://" + listen + "/slack/interactivity"
	press := func(user string) {
		t.Helper()
		body := slacktest.ButtonPress{UserID: user, ChannelID: btnMsg.ChannelID, MessageTS: btnMsg.TS,
			ActionID: slacknotify.ActionApprove, Value: value}.Body()
		if status, _, err := slacktest.Post(ctx, url, "lab-secret", time.Now(), body); err != nil || status != 200 {
			t.Fatalf("%s presses Approve: %d %v", user, status, err)
		}
	}
	press("U0MALLORY") // in the workspace, not an approver
	refusal("an unlisted user's press", actuator.RefusedApprover)

	// Positive control: the listed approver presses the button in Slack.
	press("U123")
	got := <-done
	if got.Decision != actuator.DecisionActed || got.Evidence["approved_by"] != "U123 via slack" ||
		got.Evidence["approval_signed_by"] != "notifier/core-1" {
		t.Fatalf("%s %s: %s %v", got.Decision, got.Safeguard, got.Reason, got.Evidence)
	}
	if drv.Switches() != 1 {
		t.Fatalf("%d switchovers, want 1", drv.Switches())
	}
	// Both refusals are on the audit stream.
	var n int
	for _, a := range streamRecords(t, l.admin(t).js, bus.ActionsStream, wire.ActionSubject(labCluster), wire.DecodeAction) {
		if a.Decision == actuator.DecisionApprovalRefused && a.Fingerprint == fp {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d refused approvals audited, want 2", n)
	}
}
