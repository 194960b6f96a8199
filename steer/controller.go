package steer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/steer/routes"
)

// Controller computes every service's route and keeps the routes bucket
// current: read-write services follow the primary (from the actuator's
// switchover records on mciv.actions.>, at once, and from Patroni's
// topology, polled every Interval); read-only services follow the fastest
// healthy member without firing alerts (a connect probe per member every
// Interval, smoothed). Every change is written to the bucket and audited
// as a wire.Action of kind "steer" on mciv.actions.<cluster>.
type Controller struct {
	cfg     Config
	svcs    []routes.Service
	allowed map[string]map[string]netip.AddrPort
	decider *routes.Decider
	log     *slog.Logger
	http    *http.Client
	now     func() time.Time
	// Dial probes a member; tests may replace it.
	dial func(ctx context.Context, addr string) error

	mu      sync.Mutex
	members map[string]*memberState // by cluster/member
	firing  map[string]string       // cluster/host -> fingerprint of a firing alert
	cause   map[string]string       // cluster -> fingerprint of the last switchover's alert
	told    map[string]told         // cluster -> the last switchover record's leader
	current map[string]routes.Route
	poke    chan struct{}
	id      string
	lease   *lease
	leading bool
}

// told is a leader an actuator's record named, which outweighs a topology
// answer that disagrees for a while (the answer may predate the switchover).
type told struct {
	leader string
	at     time.Time
}

// toldFor is how long a switchover record outweighs the topology.
const toldFor = 5 * time.Second

type memberState struct {
	routes.Member
	seen     bool // in the last topology answer
	probed   bool
	hasRTT   bool
	hasQuery bool
	lastProb time.Time
}

// NewController checks cfg and returns a controller.
func NewController(cfg Config, logger *slog.Logger) (*Controller, error) {
	cfg.SetDefaults()
	svcs, allowed, err := cfg.Tables()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{cfg: cfg, svcs: svcs, allowed: allowed, decider: routes.NewDecider(cfg.Policy()),
		log: logger.With("part", "steer-controller"), http: &http.Client{Timeout: 2 * time.Second}, now: time.Now,
		members: map[string]*memberState{}, firing: map[string]string{}, cause: map[string]string{},
		told:    map[string]told{},
		current: map[string]routes.Route{}, poke: make(chan struct{}, 1), id: newControllerID()}
	c.dial = func(ctx context.Context, addr string) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	for cl, ms := range allowed {
		for name, addr := range ms {
			c.members[cl+"/"+name] = &memberState{Member: routes.Member{Cluster: cl, Name: name, Addr: addr}}
		}
	}
	return c, nil
}

// EnsureBucket creates or updates the routes bucket.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (jetstream.KeyValue, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "mciv steering: the current backend of each database service",
		History: 10, Replicas: replicas, Storage: jetstream.FileStorage,
		MaxBytes: 8 << 20, // ten routes of history per service
	})
	if err != nil {
		return nil, fmt.Errorf("steer: routes bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// ID names this controller in the lease and in the routes it writes.
func (c *Controller) ID() string { return c.id }

// Leading reports whether this controller holds the lease (writes routes).
func (c *Controller) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

// Run keeps the routes current until ctx ends. Only the controller holding
// the lease (one per deployment) writes routes; the others follow the
// topology and probes, ready to take over when the lease expires.
func (c *Controller) Run(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	kv, err := EnsureBucket(ctx, js, c.cfg.Bucket, 1)
	if err != nil {
		return err
	}
	lkv, err := ensureLeaseBucket(ctx, js, c.cfg.LeaseBucket, time.Duration(c.cfg.LeaseTTL))
	if err != nil {
		return err
	}
	c.lease = &lease{kv: lkv, id: c.id, ttl: time.Duration(c.cfg.LeaseTTL)}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c.lease.release(rctx)
	}()
	c.loadCurrent(ctx, kv)
	stop, err := c.follow(nc)
	if err != nil {
		return err
	}
	defer stop()
	// The topology and probes are refreshed on their own: a slow Patroni
	// API or a member that does not answer its probe (up to ProbeTimeout)
	// never delays a route the actuator's switchover record already
	// decided. Each refresh pokes the loop below.
	c.refresh(ctx)
	refreshed := make(chan struct{})
	go func() {
		defer close(refreshed)
		t := time.NewTicker(time.Duration(c.cfg.Interval))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			c.refresh(ctx)
			c.kick()
		}
	}()
	defer func() { <-refreshed }()
	// The lease is renewed at least every Interval even when nothing pokes.
	t := time.NewTicker(time.Duration(c.cfg.Interval))
	defer t.Stop()
	for {
		c.lead(ctx, kv)
		if c.lease.valid() {
			c.publish(ctx, js, kv)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.poke:
		}
	}
}

// lead renews or takes the lease; on taking it, the routes the last holder
// wrote become this controller's current routes.
func (c *Controller) lead(ctx context.Context, kv jetstream.KeyValue) {
	was := c.lease.held
	now := c.lease.acquire(ctx)
	c.mu.Lock()
	c.leading = now
	c.mu.Unlock()
	switch {
	case now && !was:
		c.loadCurrent(ctx, kv)
		c.log.Info("took the steering lease: this controller writes routes", "controller", c.id)
	case was && !now:
		c.log.Warn("lost the steering lease: not writing routes", "controller", c.id, "holder", c.lease.holder(ctx))
	}
}

// loadCurrent reads the routes in the bucket as the current ones.
func (c *Controller) loadCurrent(ctx context.Context, kv jetstream.KeyValue) {
	for _, s := range c.svcs {
		if e, err := kv.Get(ctx, s.Name); err == nil {
			var r routes.Route
			if json.Unmarshal(e.Value(), &r) == nil && routes.Check(r, s, c.allowed) == nil {
				c.current[s.Name] = r
			}
		}
	}
}

// follow subscribes to the actions, alerts and samples the routes depend on.
func (c *Controller) follow(nc *nats.Conn) (func(), error) {
	subs := []*nats.Subscription{}
	stop := func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for subj, h := range map[string]nats.MsgHandler{
		wire.ActionsWildcard: func(m *nats.Msg) { c.onAction(m.Data) },
		wire.AlertsWildcard:  func(m *nats.Msg) { c.onAlert(m.Data) },
		wire.SamplesWildcard: func(m *nats.Msg) { c.onBatch(m.Data) },
	} {
		s, err := nc.Subscribe(subj, h)
		if err != nil {
			stop()
			return nil, fmt.Errorf("steer: subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	return stop, nil
}

// onAction takes the actuator's word for a new primary at once.
func (c *Controller) onAction(data []byte) {
	a, err := wire.DecodeAction(data)
	if err != nil || a.Kind == "steer" {
		return
	}
	if a.Kind != "switchover" && a.Kind != "failover" {
		return
	}
	// The actuator's outcomes (failover.Outcome): the switchover happened,
	// or another member took over; new_leader says who leads now.
	leader := a.Evidence["new_leader"]
	if leader == "" && a.Decision == "acted" && a.Outcome == "succeeded" {
		leader = a.To
	}
	if leader == "" || (a.Outcome != "succeeded" && a.Outcome != "other_leader") {
		return
	}
	c.mu.Lock()
	if _, ok := c.members[a.Cluster+"/"+leader]; ok {
		for _, m := range c.members {
			if m.Cluster == a.Cluster {
				m.Primary = m.Name == leader
			}
		}
		c.cause[a.Cluster] = a.Fingerprint
		c.told[a.Cluster] = told{leader: leader, at: c.now()}
		c.log.Info("switchover record: new primary", "cluster", a.Cluster, "primary", leader)
	}
	c.mu.Unlock()
	c.kick()
}

func (c *Controller) kick() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// onAlert tracks which members have firing alerts (labels cluster, host).
func (c *Controller) onAlert(data []byte) {
	var al wire.Alert
	if json.Unmarshal(data, &al) != nil {
		return
	}
	cl, host := al.Labels["cluster"], al.Labels["host"]
	if cl == "" || host == "" {
		return
	}
	k := cl + "/" + host
	c.mu.Lock()
	if al.State == wire.StateFiring {
		c.firing[k] = al.Fingerprint
	} else {
		delete(c.firing, k)
	}
	c.mu.Unlock()
	c.kick()
}

// patroniCluster is the part of GET /cluster the controller reads.
type patroniCluster struct {
	Members []struct {
		Name  string `json:"name"`
		Role  string `json:"role"`
		State string `json:"state"`
	} `json:"members"`
}

// refresh polls each cluster's topology and probes each member.
func (c *Controller) refresh(ctx context.Context) {
	var wg sync.WaitGroup
	for cl, cc := range c.cfg.Clusters {
		if len(cc.Patroni) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			topo, err := c.topology(ctx, cc.Patroni)
			if err != nil {
				c.log.Debug("topology unavailable; keeping the last", "cluster", cl, "err", err)
				return
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, m := range c.members {
				if m.Cluster == cl {
					m.seen = false
				}
			}
			t, recent := c.told[cl]
			recent = recent && c.now().Sub(t.at) < toldFor
			for _, pm := range topo.Members {
				if recent && (pm.Role == "leader") != (pm.Name == t.leader) {
					return // an answer from before the switchover: wait for the next
				}
			}
			for _, pm := range topo.Members {
				m, ok := c.members[cl+"/"+pm.Name]
				if !ok {
					continue
				}
				m.seen = true
				m.Primary = pm.Role == "leader" || pm.Role == "standby_leader"
				m.Healthy = pm.State == "running" || pm.State == "streaming"
			}
			for _, m := range c.members {
				if m.Cluster == cl && !m.seen {
					m.Healthy, m.Primary = false, false
				}
			}
		}()
	}
	c.mu.Lock()
	var probe []*memberState
	for _, m := range c.members {
		probe = append(probe, m)
	}
	c.mu.Unlock()
	for _, m := range probe {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, time.Duration(c.cfg.ProbeTimeout))
			defer cancel()
			start := time.Now()
			err := c.dial(pctx, m.Addr.String())
			took := time.Since(start)
			c.mu.Lock()
			defer c.mu.Unlock()
			// Smoothed: a quarter of each new probe.
			const w = 0.25
			fail := 0.0
			if err != nil {
				fail = 1
				took = time.Duration(c.cfg.ProbeTimeout)
			}
			if !m.probed {
				m.Latency, m.ErrorRate, m.probed = took, fail, true
			} else {
				m.Latency = time.Duration((1-w)*float64(m.Latency) + w*float64(took))
				m.ErrorRate = (1-w)*m.ErrorRate + w*fail
			}
			if len(c.cfg.Clusters[m.Cluster].Patroni) == 0 {
				m.Healthy = err == nil || m.ErrorRate < 0.9 // no Patroni: the probe decides
			}
		}()
	}
	wg.Wait()
}

func (c *Controller) topology(ctx context.Context, urls []string) (patroniCluster, error) {
	var errs []error
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/cluster", nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := c.http.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var pc patroniCluster
		err = json.NewDecoder(resp.Body).Decode(&pc)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s: status %d: %v", u, resp.StatusCode, err))
			continue
		}
		return pc, nil
	}
	return patroniCluster{}, errors.Join(errs...)
}

// Members returns the controller's view of every member.
func (c *Controller) Members() []routes.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]routes.Member, 0, len(c.members))
	for k, m := range c.members {
		mm := m.Member
		_, mm.Firing = c.firing[k]
		out = append(out, mm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster+"/"+out[i].Name < out[j].Cluster+"/"+out[j].Name })
	return out
}

// publish decides every route and writes and audits the changes.
func (c *Controller) publish(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) {
	members := c.Members()
	now := c.now()
	for _, s := range c.svcs {
		cur, ok := c.current[s.Name]
		var curp *routes.Route
		if ok {
			curp = &cur
		}
		r := c.decider.Decide(now, s, members, curp)
		if ok && r.Same(cur) {
			continue
		}
		if err := routes.Check(r, s, c.allowed); err != nil {
			c.log.Error("computed a route the agents would refuse", "service", s.Name, "err", err)
			continue
		}
		if !c.lease.valid() {
			return // the lease ran out during this round: write nothing more
		}
		r.By = c.id
		data, _ := json.Marshal(r)
		if _, err := kv.Put(ctx, s.Name, data); err != nil {
			c.log.Warn("route not written; retrying next round", "service", s.Name, "err", err)
			continue
		}
		c.current[s.Name] = r
		if cur.Member != "" || r.Member != "" {
			c.audit(ctx, js, s, cur, r)
		}
	}
}

// audit publishes the route change as an action, in the thread of the
// alert that caused it when there is one.
func (c *Controller) audit(ctx context.Context, js jetstream.JetStream, s routes.Service, from, to routes.Route) {
	cluster := to.Cluster
	if cluster == "" {
		cluster = s.Clusters[0]
	}
	text := fmt.Sprintf("new connections to %s now go to %s", s.Name, to.Member)
	if to.Member == "" {
		text = fmt.Sprintf("new connections to %s are not steered (%s)", s.Name, to.Reason)
	}
	c.mu.Lock()
	fp := c.firing[from.Cluster+"/"+from.Member]
	if fp == "" && s.Role == routes.ReadWrite {
		fp = c.cause[cluster]
	}
	c.mu.Unlock()
	a := &wire.Action{
		ID: fmt.Sprintf("steer-%s-%d", s.Name, to.At.UnixNano()), Cluster: cluster, Fingerprint: fp,
		Kind: "steer", Decision: "acted", Outcome: "route published", From: from.Member, To: to.Member,
		Reason: text, At: to.At,
		Evidence: map[string]string{"service": s.Name, "role": string(s.Role), "address": s.Address.String(),
			"backend": to.Addr, "why": to.Reason, "controller": c.id},
	}
	data, err := wire.EncodeAction(a)
	if err != nil {
		return
	}
	if _, err := js.Publish(ctx, wire.ActionSubject(cluster), data, jetstream.WithMsgID(a.ID)); err != nil {
		c.log.Warn("route change not audited", "service", s.Name, "err", err)
	}
	c.log.Info(text, "service", s.Name, "cluster", to.Cluster, "member", to.Member, "addr", to.Addr, "why", to.Reason)
}

// ewma folds x into *v (a quarter of each new value); first sets it.
func ewma(v *time.Duration, first *bool, x time.Duration) {
	if !*first {
		*v, *first = x, true
		return
	}
	*v = time.Duration(0.75*float64(*v) + 0.25*float64(x))
}

// onBatch folds the collectors' signals into the members: tcp_rtt_seconds
// and tcp_connect_seconds / tcp_connect_errors_total by peer (any host's
// view of a member's address), and db_query_seconds of the member's own
// collector (host = member name).
func (c *Controller) onBatch(data []byte) {
	b, err := wire.DecodeBatch(data)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	connects := map[*memberState]float64{}
	errs := map[*memberState]float64{}
	for i := range b.Series {
		s := &b.Series[i]
		switch s.Signal {
		case "tcp_rtt_seconds", "tcp_connect_seconds", "tcp_connect_errors_total":
			for _, m := range c.byPeer(s.Label("peer")) {
				switch {
				case s.Signal == "tcp_rtt_seconds" && s.Hist != nil && s.Hist.Count > 0:
					ewma(&m.RTT, &m.hasRTT, time.Duration(s.Hist.Sum/float64(s.Hist.Count)*float64(time.Second)))
				case s.Signal == "tcp_connect_seconds" && s.Hist != nil:
					connects[m] += float64(s.Hist.Count)
				case s.Signal == "tcp_connect_errors_total":
					errs[m] += s.Value
				}
			}
		case "db_query_seconds":
			m, ok := c.members[b.Cluster+"/"+b.Host]
			if ok && s.Hist != nil && s.Hist.Count > 0 {
				ewma(&m.QueryLatency, &m.hasQuery, time.Duration(s.Hist.Sum/float64(s.Hist.Count)*float64(time.Second)))
			}
		}
	}
	for m, e := range errs {
		if total := e + connects[m]; total > 0 {
			m.ErrorRate = 0.75*m.ErrorRate + 0.25*(e/total)
		}
	}
}

// byPeer returns the members at a collector's peer label (an address, or
// address:port).
func (c *Controller) byPeer(peer string) []*memberState {
	var out []*memberState
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		for _, m := range c.members {
			if m.Addr.Addr().Unmap() == ap.Addr().Unmap() && m.Addr.Port() == ap.Port() {
				out = append(out, m)
			}
		}
		return out
	}
	if a, err := netip.ParseAddr(peer); err == nil {
		for _, m := range c.members {
			if m.Addr.Addr().Unmap() == a.Unmap() {
				out = append(out, m)
			}
		}
	}
	return out
}
