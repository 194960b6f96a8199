package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
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
