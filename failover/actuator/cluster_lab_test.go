package actuator

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/failover"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/fleetlab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

// Lease and windows of the cluster lab: short enough to wait a lease out,
// long enough for a decision on a loaded machine.
const (
	labLeaseTTL    = 10 * time.Second
	labLeaseMargin = 3 * time.Second
	labWindow      = 2 * time.Second
	labBatchEvery  = 200 * time.Millisecond
)

// pairLab is two actuator replicas (the same configuration, so one shared
// durable consumer, as the Helm chart's two pods) on a three-node cluster
// of nats-server processes, a Patroni cluster behind its REST API, and
// the sample batches of its three hosts.
// crashFirstToSwitch makes the first actuator whose switchover the
// cluster accepts crash before it reads the answer; the returned function
// waits for that actuator.
func (p *pairLab) crashFirstToSwitch() func() *labActuator {
	victim := make(chan *labActuator, 1)
	for _, a := range p.acts {
		a.ep.setOnSwitch(func() {
			if p.hooked.CompareAndSwap(false, true) {
				a.crash()
				victim <- a
			}
		})
	}
	return func() *labActuator {
		select {
		case a := <-victim:
			return a
		case <-p.ctx.Done():
			p.t.Fatal("no switchover")
			return nil
		}
	}
}

type pairLab struct {
	t      *testing.T
	ctx    context.Context
	cl     *fleetlab.Cluster
	js     jetstream.JetStream // the test's own connection
	scope  string
	bucket string
	pat    labPatroni
	acts   []*labActuator
	decs   chan labDecision
	logs   *testenv.LockedBuffer

	hooked atomic.Bool // underLease has run
	// underLease runs once, in the actuator that holds the lease, at its
	// re-check under the lease (after Acquire, before the driver call).
	underLease atomic.Pointer[func(a *labActuator)]
}

// labActuator is one replica with its own NATS connection and its own
// way into Patroni.
type labActuator struct {
	name   string
	nc     *nats.Conn
	act    *Actuator
	ep     labEndpoint
	stop   context.CancelFunc
	done   chan error
	killed atomic.Bool
}

type labDecision struct {
	by  string
	act wire.Action
}

// hookDriver is a failover.Driver that calls onTopology before reading
// the topology.
type hookDriver struct {
	failover.Driver
	onTopology func()
}

func (d hookDriver) Topology(ctx context.Context) (failover.Topology, error) {
	d.onTopology()
	return d.Driver.Topology(ctx)
}

// startClusterLab starts the cluster of nats-server processes and waits
// until the shared streams exist with three replicas.
func startClusterLab(t *testing.T, ctx context.Context) (*fleetlab.Cluster, jetstream.JetStream) {
	t.Helper()
	cl := fleetlab.Start(ctx, t, 3)
	nc, err := bus.Connect(ctx, cl.URLs(), bus.ConnectOptions{Name: "actuator-lab"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The cluster needs a moment to elect its meta leader.
	waitUntil(t, ctx, "streams created", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return bus.EnsureStreams(sctx, js, bus.StreamOptions{Replicas: 3}) == nil
	})
	return cl, js
}

// waitUntil polls cond every 100 ms until it holds or ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not before the deadline", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// newPairLab starts two actuators for a Patroni cluster of its own
// (scope) with buckets of their own, and feeds sample batches in which
// the replicas see the current leader degraded.
// edit, when given, changes the actuators' configuration.
func newPairLab(t *testing.T, ctx context.Context, cl *fleetlab.Cluster, js jetstream.JetStream, pat labPatroni, edit ...func(*Config)) *pairLab {
	t.Helper()
	scope := pat.Scope()
	p := &pairLab{t: t, ctx: ctx, cl: cl, js: js, scope: scope, bucket: "lab_" + strings.ReplaceAll(scope, "-", "_"),
		pat: pat, decs: make(chan labDecision, 64), logs: &testenv.LockedBuffer{}}
	t.Cleanup(func() {
		p.pat.stop()
		for _, a := range p.acts {
			a.stop()
			if !a.killed.Load() { // a killed one is abandoned, as a dead process
				<-a.done
				a.nc.Close()
			}
		}
		if t.Failed() {
			t.Logf("actuator logs:\n%s", p.logs.String())
		}
	})
	for _, name := range []string{"act-a", "act-b"} {
		p.acts = append(p.acts, p.startActuator(name, edit))
	}
	fctx, stopFeed := context.WithCancel(ctx)
	fed := make(chan struct{})
	t.Cleanup(func() { stopFeed(); <-fed })
	go func() {
		defer close(fed)
		p.feed(fctx)
	}()
	// Both see the three hosts before the first alert.
	waitUntil(t, ctx, "hosts seen", func() bool {
		for _, a := range p.acts {
			if len(a.act.obs.Seen(scope, time.Now().Add(-time.Second))) != len(pat.Hosts()) {
				return false
			}
		}
		return true
	})
	return p
}

func (p *pairLab) startActuator(name string, edit []func(*Config)) *labActuator {
	t := p.t
	t.Helper()
	nc, err := bus.Connect(p.ctx, p.cl.URLs(), bus.ConnectOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	js, err := bus.JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	la := &labActuator{name: name, nc: nc, ep: p.pat.endpoint(t, name), done: make(chan error, 1)}
	drv := hookDriver{Driver: la.ep.driver(t), onTopology: func() {
		if f := p.underLease.Load(); f != nil && p.leaseHolder() == name && p.hooked.CompareAndSwap(false, true) {
			(*f)(la)
		}
	}}
	cfg := Config{
		Enabled: true, Rules: map[string]Policy{"pg_latency": {When: WhenPrimary}},
		Persist: Duration(time.Second), EvidenceWait: Duration(5 * time.Second), Recheck: Duration(200 * time.Millisecond),
		Window: Duration(labWindow), SeenWindow: Duration(5 * time.Second), MinDegradedBatches: 2,
		Cooldown: Duration(10 * time.Minute), LeaseTTL: Duration(labLeaseTTL), LeaseMargin: Duration(labLeaseMargin),
		Durable: "actuator-" + p.scope, KVBucket: p.bucket,
	}
	for _, f := range edit {
		f(&cfg)
	}
	a, err := New(Options{
		Config: cfg,
		JS:     js, Drivers: map[string]failover.Driver{p.scope: drv}, Holder: name, Replicas: 3,
		Logger: slog.New(slog.NewTextHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("actuator", name),
		OnDecision: func(act wire.Action) {
			if la.killed.Load() {
				return // what a dead process would have done is nobody's business
			}
			select {
			case p.decs <- labDecision{name, act}:
			default:
				t.Errorf("decision of %s dropped: %s", name, act.ID)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	la.act = a
	rctx, cancel := context.WithCancel(p.ctx)
	la.stop = cancel
	go func() { la.done <- a.Run(rctx) }()
	waitUntil(t, p.ctx, name+" consuming", func() bool { return a.Ready() == nil })
	return la
}

// crash stops a as a SIGKILL would: its bus connection closes (the
// lease it holds stays until the TTL), its Patroni endpoint answers
// nothing more, its decision is never audited.
func (a *labActuator) crash() {
	a.killed.Store(true)
	a.ep.kill()
	a.nc.Close()
}

// feed publishes a batch of every host each labBatchEvery until ctx
// ends; the replicas see the current leader degraded.
func (p *pairLab) feed(ctx context.Context) {
	var seq uint64
	for ctx.Err() == nil {
		seq++
		leader, addr := p.pat.Leader(), p.pat.LeaderAddr()
		for _, h := range p.pat.Hosts() {
			b := &wire.Batch{Cluster: p.scope, Host: h, Seq: seq, Start: time.Now(), Interval: labBatchEvery,
				Series: []wire.Series{{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}}}
			if h != leader {
				b.Series = append(b.Series, wire.Series{Signal: "tcp_retransmits_total", Kind: wire.KindCounter,
					Labels: []wire.Label{{Name: "local_port", Value: "40000"}, {Name: "peer", Value: addr}}, Value: 7})
			}
			_ = p.js.Conn().Publish(wire.SamplesSubject(p.scope, h), wire.EncodeBatch(b))
		}
		select {
		case <-ctx.Done():
		case <-time.After(labBatchEvery):
		}
	}
}

// alertLeader publishes a firing alert about the current leader that
// started 3 s ago (so it has persisted).
func (p *pairLab) alertLeader() *wire.Alert {
	p.t.Helper()
	return publishAlert(p.t, p.ctx, p.js, p.scope, p.pat.Leader(), time.Now().Add(-3*time.Second))
}

// next returns the next decision on fingerprint fp.
func (p *pairLab) next(fp string) labDecision {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			p.t.Fatalf("no decision on %s", fp)
		case d := <-p.decs:
			if d.act.Fingerprint == fp && d.act.Decision != DecisionPendingApproval {
				p.t.Logf("%s: %s %s/%s token %d: %s", d.by, fp, d.act.Decision, d.act.Safeguard, d.act.FencingToken, d.act.Reason)
				return d
			}
			p.t.Logf("%s: other decision %s %s %s", d.by, d.act.Fingerprint, d.act.Decision, d.act.Safeguard)
		}
	}
}

func (p *pairLab) leaseKV() jetstream.KeyValue {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	kv, err := p.js.KeyValue(ctx, p.bucket+"_lease")
	if err != nil {
		return nil
	}
	return kv
}

// leaseHolder reads the lease from the server ("" when free or unreadable).
func (p *pairLab) leaseHolder() string {
	kv := p.leaseKV()
	if kv == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	e, err := kv.Get(ctx, keyLeasePrefix+p.scope)
	if err != nil {
		return ""
	}
	var l LeaseInfo
	if json.Unmarshal(e.Value(), &l) != nil {
		return ""
	}
	return l.Holder
}

// waitLeaseExpired waits until the lease key is gone (the bucket's TTL).
func (p *pairLab) waitLeaseExpired() {
	p.t.Helper()
	waitUntil(p.t, p.ctx, "lease expired", func() bool {
		kv := p.leaseKV()
		if kv == nil {
			return false
		}
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		_, err := kv.Get(ctx, keyLeasePrefix+p.scope)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}

// waitWindow waits until the samples of before the last switchover are
// out of the evidence window (a former replica's degraded view of the
// former leader would make it an unhealthy candidate).
func (p *pairLab) waitWindow() {
	p.t.Helper()
	select {
	case <-p.ctx.Done():
		p.t.Fatal("deadline")
	case <-time.After(labWindow + 500*time.Millisecond):
	}
}

func (p *pairLab) actuator(name string) *labActuator {
	for _, a := range p.acts {
		if a.name == name {
			return a
		}
	}
	p.t.Fatalf("no actuator %s", name)
	return nil
}

// requireCooldownBy says the decision was refused by the cooldown that
// the action on the alert with fingerprint fp started (its action id
// begins with fp).
func requireCooldownBy(t *testing.T, d labDecision, fp string) {
	t.Helper()
	if d.act.Decision != DecisionRefused || d.act.Safeguard != string(GuardCooldown) ||
		!strings.Contains(d.act.Reason, ": "+fp+"-") {
		t.Fatalf("%s: %s/%s, want refused by the cooldown of the action on %s: %s", d.by, d.act.Decision, d.act.Safeguard, fp, d.act.Reason)
	}
}

// TestActuatorReplicasOnCluster runs two actuator replicas on a
// three-node cluster of nats-server processes (lease and state buckets
// with three replicas) before a Patroni REST API that really moves its
// leader. The replica holding the lease crashes mid-decision (after
// taking the lease; during the switchover), then the node leading the
// lease bucket's stream is SIGKILLed mid-decision (after the lease is
// taken; during the switchover). There is never more than one
// switchover, the other replica does not act under a held lease, every
// surviving decision is audited, and the cooldown outlives the crash and
// the node's return. MCIV_FLEET_LAB=0 skips it.
func TestActuatorReplicasOnCluster(t *testing.T) {
	if os.Getenv("MCIV_FLEET_LAB") == "0" || testing.Short() {
		t.Skip("MCIV_FLEET_LAB=0 or -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, js := startClusterLab(t, ctx)

	t.Run("lease holder crashes before the driver call", func(t *testing.T) {
		fake := newPatroniState("pay1")
		p := newPairLab(t, ctx, cl, js, fake)
		victim := make(chan *labActuator, 1)
		hook := func(a *labActuator) { a.crash(); victim <- a }
		p.underLease.Store(&hook)
		first := p.alertLeader()
		var dead *labActuator
		select {
		case dead = <-victim:
		case <-ctx.Done():
			t.Fatal("no actuator took the lease")
		}
		survivor := p.acts[0]
		if survivor == dead {
			survivor = p.acts[1]
		}
		t.Logf("%s took the lease for %s and crashed", dead.name, first.Fingerprint)
		// The survivor is asked while the dead one's lease is held.
		second := p.alertLeader()
		d := p.next(second.Fingerprint)
		if d.by != survivor.name || d.act.Decision != DecisionRefused || d.act.Safeguard != string(GuardLease) ||
			!strings.Contains(d.act.Reason, dead.name) {
			t.Fatalf("%s: %s/%s, want refused by %s's lease: %s", d.by, d.act.Decision, d.act.Safeguard, dead.name, d.act.Reason)
		}
		if n := len(fake.Switches()); n != 0 {
			t.Fatalf("%d switchovers while the lease was held", n)
		}
		// No cooldown was started: once the lease expired, the survivor acts.
		p.waitLeaseExpired()
		third := p.alertLeader()
		d = p.next(third.Fingerprint)
		sw := fake.Switches()
		if d.act.Decision != DecisionActed || d.act.Outcome != string(failover.OutcomeSucceeded) || len(sw) != 1 {
			t.Fatalf("%s: %s/%s/%s, %d switchovers: %s", d.by, d.act.Decision, d.act.Outcome, d.act.Safeguard, len(sw), d.act.Reason)
		}
		if sw[0].By != survivor.name || sw[0].Token != d.act.FencingToken {
			t.Errorf("switchover %+v, want by %s with token %d", sw[0], survivor.name, d.act.FencingToken)
		}
		if a := lastAuditOf(t, js, p.scope); a.ID != d.act.ID || a.Decision != DecisionActed {
			t.Errorf("audit stream has %s %s, want %s", a.ID, a.Decision, d.act.ID)
		}
		// And the cooldown holds for the new leader.
		p.waitWindow()
		fourth := p.alertLeader()
		requireCooldownBy(t, p.next(fourth.Fingerprint), third.Fingerprint)
		if n := len(fake.Switches()); n != 1 {
			t.Fatalf("%d switchovers", n)
		}
	})

	t.Run("lease holder crashes during the switchover", func(t *testing.T) {
		fake := newPatroniState("pay2")
		p := newPairLab(t, ctx, cl, js, fake)
		awaitCrash := p.crashFirstToSwitch()
		first := p.alertLeader()
		dead := awaitCrash()
		sw := fake.Switches()
		if len(sw) != 1 {
			t.Fatalf("%d switchovers", len(sw))
		}
		t.Logf("%s switched %s over (%s→%s, token %d) for %s and crashed before the answer", dead.name, p.scope, sw[0].From, sw[0].To, sw[0].Token, first.Fingerprint)
		// The new leader is alerted on: the survivor finds the dead one's cooldown.
		p.waitWindow()
		second := p.alertLeader()
		d := p.next(second.Fingerprint)
		if d.by == dead.name {
			t.Fatalf("decision by the dead actuator")
		}
		requireCooldownBy(t, d, first.Fingerprint)
		if a := lastAuditOf(t, js, p.scope); a.ID != d.act.ID {
			t.Errorf("audit stream has %s, want %s", a.ID, d.act.ID)
		}
		// Once the dead one's lease expired too, still the cooldown.
		p.waitLeaseExpired()
		third := p.alertLeader()
		requireCooldownBy(t, p.next(third.Fingerprint), first.Fingerprint)
		if n := len(fake.Switches()); n != 1 {
			t.Fatalf("%d switchovers", n)
		}
	})

	for _, during := range []string{"after the lease is taken", "during the switchover"} {
		t.Run("lease stream leader SIGKILLed "+during, func(t *testing.T) {
			scope := "pay3"
			if during == "during the switchover" {
				scope = "pay4"
			}
			fake := newPatroniState(scope)
			p := newPairLab(t, ctx, cl, js, fake)
			var killed atomic.Int32
			killed.Store(-1)
			killLeader := func() {
				ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				s, err := js.Stream(ictx, "KV_"+p.bucket+"_lease")
				if err != nil {
					t.Errorf("lease stream: %v", err)
					return
				}
				info := s.CachedInfo()
				if info.Cluster == nil || cl.Index(info.Cluster.Leader) < 0 {
					t.Errorf("lease stream has no leader: %+v", info.Cluster)
					return
				}
				i := cl.Index(info.Cluster.Leader)
				cl.Kill(i)
				killed.Store(int32(i))
				t.Logf("SIGKILLed %s, leader of the lease stream", info.Cluster.Leader)
			}
			if during == "after the lease is taken" {
				hook := func(*labActuator) { killLeader() }
				p.underLease.Store(&hook)
			} else {
				for _, a := range p.acts {
					a.ep.setOnSwitch(func() {
						if p.hooked.CompareAndSwap(false, true) {
							killLeader()
						}
					})
				}
			}
			first := p.alertLeader()
			d := p.next(first.Fingerprint)
			if killed.Load() < 0 {
				t.Fatal("no node was killed")
			}
			sw := fake.Switches()
			switch {
			case len(sw) > 1:
				t.Fatalf("%d switchovers", len(sw))
			case d.act.Decision == DecisionActed:
				if len(sw) != 1 || sw[0].Token != d.act.FencingToken {
					t.Fatalf("acted with token %d, switchovers %+v", d.act.FencingToken, sw)
				}
			case d.act.Decision == DecisionRefused:
				if d.act.Safeguard == "" || d.act.Reason == "" || len(sw) != 0 {
					t.Fatalf("refused by %q (%q) with switchovers %+v", d.act.Safeguard, d.act.Reason, sw)
				}
			default:
				t.Fatalf("decision %s", d.act.Decision)
			}
			// The node comes back and its replicas catch up.
			if err := cl.Restart(ctx, int(killed.Load())); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, ctx, "buckets healed", func() bool {
				for _, name := range []string{"KV_" + p.bucket + "_lease", "KV_" + p.bucket + "_state", bus.ActionsStream} {
					ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
					s, err := js.Stream(ictx, name)
					cancel()
					if err != nil {
						return false
					}
					c := s.CachedInfo().Cluster
					if c == nil || c.Leader == "" || len(c.Replicas) != 2 {
						return false
					}
					for _, r := range c.Replicas {
						if !r.Current || r.Offline {
							return false
						}
					}
				}
				return true
			})
			if a := lastAuditOf(t, js, p.scope); a.ID != d.act.ID {
				t.Errorf("audit stream has %s, want %s", a.ID, d.act.ID)
			}
			// Ask again until a switchover happened (after the lease of a
			// refused action, which may not have been released, expired);
			// then the cooldown holds.
			for range 2 {
				if len(sw) == 1 {
					break
				}
				p.waitLeaseExpired()
				next := p.alertLeader()
				d = p.next(next.Fingerprint)
				sw = fake.Switches()
			}
			if len(sw) == 0 && d.act.Safeguard == string(GuardCooldown) {
				// The refused action's cooldown could not be cleared
				// while the bus was electing: the safe side.
				t.Logf("cooldown of a refused action left in place: %s", d.act.Reason)
				return
			}
			if len(sw) != 1 || d.act.Decision != DecisionActed {
				t.Fatalf("%d switchovers after the cluster healed (last: %s/%s: %s)", len(sw), d.act.Decision, d.act.Safeguard, d.act.Reason)
			}
			actedOn := d.act.Fingerprint
			p.waitWindow()
			again := p.alertLeader()
			requireCooldownBy(t, p.next(again.Fingerprint), actedOn)
			if n := len(fake.Switches()); n != 1 {
				t.Fatalf("%d switchovers", n)
			}
		})
	}
}
