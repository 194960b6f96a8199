package actuator

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// restartable is an embedded server that can be restarted on the same port
// and data directory.
type restartable struct {
	t      *testing.T
	dir    string
	listen string
	emb    *bus.Embedded
}

func startRestartable(t *testing.T) (*restartable, jetstream.JetStream) {
	t.Helper()
	r := &restartable{t: t, dir: t.TempDir(), listen: "127.0.0.1:0"}
	r.start()
	host, port, _ := net.SplitHostPort(r.emb.URL()[len("nats://"):])
	r.listen = net.JoinHostPort(host, port)
	t.Cleanup(func() { r.emb.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := bus.Connect(ctx, r.emb.URL(), bus.ConnectOptions{Name: "restart-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	return r, js
}

func (r *restartable) start() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	emb, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: r.dir, Listen: r.listen}, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	r.emb = emb
}

func (r *restartable) restart() {
	r.emb.Shutdown()
	r.start()
}

// TestNATSRestartDuringDecision restarts the embedded server while the
// actuator holds the lease and re-checks. The actuator never acts twice,
// and acts only under a lease the server confirms after the restart.
func TestNATSRestartDuringDecision(t *testing.T) {
	t.Run("lease survives the restart", func(t *testing.T) {
		srv, js := startRestartable(t)
		h := newHarness(t, js, bucket(), nil)
		h.healthyEvidence()
		h.drv.onTopology = func(n int) {
			if n == 2 {
				srv.restart()
			}
		}
		h.drv.onSwitch = func(req failover.Request) (failover.Result, error) {
			// At the moment of the call the lease must be ours.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := h.act.Store().Verify(ctx, testCluster, req.FencingToken); err != nil {
				t.Errorf("switchover under an invalid lease: %v", err)
			}
			return failover.Result{Driver: "fake", To: req.To, NewLeader: req.To}, nil
		}
		got := h.handle(h.alert("db-1", 20*time.Second))
		t.Logf("first: %s %s: %s", got.Decision, got.Safeguard, got.Reason)
		// The alert is delivered again after the restart.
		h.drv.onTopology = nil
		h.healthyEvidence()
		again := h.handle(h.alert("db-1", 20*time.Second))
		if n := len(h.drv.Switches()); n > 1 {
			t.Fatalf("%d switchovers, want at most 1", n)
		}
		if len(h.drv.Switches()) == 1 && again.Safeguard != string(GuardCooldown) {
			t.Errorf("second delivery: %s %s", again.Decision, again.Safeguard)
		}
		if a := lastAudit(t, js); a.ID != again.ID {
			t.Errorf("audit stream has %s, want %s", a.ID, again.ID)
		}
	})
	t.Run("lease expired during the outage", func(t *testing.T) {
		srv, js := startRestartable(t)
		h := newHarness(t, js, bucket(), nil)
		h.healthyEvidence()
		h.drv.onTopology = func(n int) {
			if n != 2 {
				return
			}
			srv.restart()
			// Meanwhile the lease expired and another actuator took it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			nc, err := bus.Connect(ctx, srv.emb.URL(), bus.ConnectOptions{Name: "other"})
			if err != nil {
				t.Error(err)
				return
			}
			defer nc.Close()
			ojs, _ := bus.JetStream(nc)
			kv, err := ojs.KeyValue(ctx, h.act.cfg.KVBucket+"_lease")
			if err != nil {
				t.Error(err)
				return
			}
			if err := kv.Purge(ctx, keyLeasePrefix+testCluster); err != nil {
				t.Error(err)
			}
			if _, err := kv.Put(ctx, keyLeasePrefix+testCluster, []byte(`{"holder":"other"}`)); err != nil {
				t.Error(err)
			}
		}
		got := h.handle(h.alert("db-1", 20*time.Second))
		if got.Decision != DecisionRefused || got.Safeguard != string(GuardLease) || len(h.drv.Switches()) != 0 {
			t.Fatalf("%s %s, %d switchovers: %s", got.Decision, got.Safeguard, len(h.drv.Switches()), got.Reason)
		}
		if a := lastAudit(t, js); a.ID != got.ID {
			t.Errorf("audit stream has %s, want %s", a.ID, got.ID)
		}
		if _, rev, _ := h.act.Store().Cooldown(context.Background(), testCluster); rev != 0 {
			t.Errorf("a refused action left a cooldown")
		}
		t.Logf("refused: %s", got.Reason)
	})
}
