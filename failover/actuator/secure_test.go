package actuator

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// secureBus is an embedded server that enforces the shipped role
// permissions of a fresh trust root, with the shared streams provisioned.
type secureBus struct {
	trust *auth.Trust
	url   string
}

func startSecureNATS(t *testing.T) *secureBus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	trust, err := auth.Init(filepath.Join(t.TempDir(), "auth"), auth.InitOptions{MaxStore: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		EmbeddedSecure: bus.EmbeddedSecure{Auth: trust.ConfigureServer, MaxStore: 1 << 30}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	sb := &secureBus{trust: trust, url: emb.URL()}
	if err := bus.EnsureStreams(ctx, sb.js(t, auth.Admin, "provision"), bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return sb
}

// conn connects with a credential of role issued for name.
func (sb *secureBus) conn(t *testing.T, role auth.Role, name string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	c, err := sb.trust.Issue(auth.Identity{Role: role, Cluster: testCluster, Name: name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, nats.UserJWTAndSeed(c.JWT, string(c.Seed)),
		nats.CustomInboxPrefix(auth.InboxPrefix(role, testCluster, name)))
	nc, err := nats.Connect(sb.url, opts...)
	if err != nil {
		t.Fatalf("%s connects: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// verifier trusts the bus's account.
func (sb *secureBus) verifier(t *testing.T) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(sb.trust.AccountJWT)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signer signs as a credential of role issued for cluster and name.
func (sb *secureBus) signer(t *testing.T, role auth.Role, cluster, name string) *auth.Signer {
	t.Helper()
	c, err := sb.trust.Issue(auth.Identity{Role: role, Cluster: cluster, Name: name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSigner(c.JWT, c.Seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (sb *secureBus) js(t *testing.T, role auth.Role, name string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(sb.conn(t, role, name))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestSecurityVantageSpoofing: on the permissioned server, the actuator
// reads samples on its own credentials; a collector cannot publish on
// another host's subject (the server refuses), and a batch it publishes
// on its own subject speaking for another host is refused and counted by
// the actuator. Its own batches count.
func TestSecurityVantageSpoofing(t *testing.T) {
	sb := startSecureNATS(t)
	actNC := sb.conn(t, auth.Actuator, "mon-1")
	actJS, _ := jetstream.New(actNC)
	h := newHarness(t, actJS, DefaultKVBucket, nil)
	got := make(chan bool, 16)
	if _, err := actNC.Subscribe(wire.SamplesWildcard, func(m *nats.Msg) { got <- h.act.ObserveMsg(m.Subject, m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := actNC.Flush(); err != nil {
		t.Fatal(err)
	}
	denied := make(chan error, 4)
	col := sb.conn(t, auth.Collector, "db-2", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			denied <- err
		}
	}))
	batch := func(host string) []byte {
		return wire.EncodeBatch(&wire.Batch{Cluster: testCluster, Host: host, Start: h.clock.Now(), Interval: time.Second,
			Series: []wire.Series{{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}}})
	}
	// Another host's subject: refused by the server, never delivered.
	if err := col.Publish(wire.SamplesSubject(testCluster, "db-3"), batch("db-3")); err != nil {
		t.Fatal(err)
	}
	_ = col.Flush()
	select {
	case <-denied:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not refuse db-2 publishing as db-3")
	}
	// Its own subject, another host's payload: refused by the actuator.
	if err := col.Publish(wire.SamplesSubject(testCluster, "db-2"), batch("db-3")); err != nil {
		t.Fatal(err)
	}
	if ok := <-got; ok {
		t.Fatal("db-2's batch speaking as db-3 counted as a vantage point")
	}
	if n := h.act.Refused(RefusedSpoofedSample); n != 1 {
		t.Errorf("spoofed samples counted %v, want 1", n)
	}
	// Positive control: its own batch counts.
	if err := col.Publish(wire.SamplesSubject(testCluster, "db-2"), batch("db-2")); err != nil {
		t.Fatal(err)
	}
	if ok := <-got; !ok {
		t.Fatal("db-2's own batch did not count")
	}
}
