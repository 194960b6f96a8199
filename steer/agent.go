package steer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mciv/mciv/internal/promreg"
	"github.com/mciv/mciv/steer/routes"
)

// Programmer is the kernel side an Agent drives (a *Datapath; tests fake it).
type Programmer interface {
	Set(Entry) error
	Delete(netip.AddrPort) error
	// Entries is what the datapath holds (pinned by an earlier agent).
	Entries() ([]Entry, error)
	Counts() (map[CountKey]uint64, error)
	Hooks() []Hook
	Cgroup() string
}

// Agent follows the routes bucket and programs the datapath. It only reads
// the bucket: its NATS role needs no more than a KV watch.
type Agent struct {
	cfg      Config
	svcs     []routes.Service
	allowed  map[string]map[string]netip.AddrPort
	ids      map[string]uint32
	idNames  []string
	dp       Programmer
	log      *slog.Logger
	now      func() time.Time
	changes  *prometheus.CounterVec
	refused  *prometheus.CounterVec
	natsUp   prometheus.Gauge
	mu       sync.Mutex
	state    map[string]*ServiceStatus
	natsOK   bool
	lostAt   time.Time
	attachOK bool
}

// NewAgent checks cfg and returns an agent driving dp. Metrics are
// registered on reg (nil: none).
func NewAgent(cfg Config, dp Programmer, reg prometheus.Registerer, logger *slog.Logger) (*Agent, error) {
	cfg.SetDefaults()
	svcs, allowed, err := cfg.Tables()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ids, names := backendIDs(allowed)
	a := &Agent{cfg: cfg, svcs: svcs, allowed: allowed, ids: ids, idNames: names, dp: dp,
		log: logger.With("part", "steer"), now: time.Now, state: map[string]*ServiceStatus{}}
	a.changes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mciv_steer_route_changes_total",
		Help: "Routes this agent applied, per service."}, []string{"service"})
	a.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mciv_steer_routes_refused_total",
		Help: "Routes this agent refused (unlisted service, wrong role, unknown backend), per service key."}, []string{"service"})
	a.natsUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mciv_steer_nats_connected",
		Help: "1 while the agent follows the routes bucket; 0: NATS lost, last routes kept (fail static)."})
	if reg != nil {
		promreg.Register(reg, a.changes, logger)
		promreg.Register(reg, a.refused, logger)
		promreg.Register(reg, a.natsUp, logger)
		promreg.Register[prometheus.Collector](reg, &connectsCollector{a: a}, logger)
	}
	for i, s := range svcs {
		a.state[s.Name] = &ServiceStatus{Name: s.Name, Address: s.Address.String(), Role: string(s.Role), Clusters: s.Clusters, id: uint32(i + 1)}
	}
	return a, nil
}

// ServiceStatus is one service as the agent steers it.
type ServiceStatus struct {
	Name     string            `json:"name"`
	Address  string            `json:"address"`
	Role     string            `json:"role"`
	Clusters []string          `json:"clusters"`
	Route    *routes.Route     `json:"route,omitempty"`
	Refused  string            `json:"refused,omitempty"` // the last refused route, why
	Connects map[string]uint64 `json:"connects,omitempty"`
	id       uint32
}

// Status is what `mciv steer status` shows.
type Status struct {
	Cgroup   string          `json:"cgroup"`
	Hooks    []Hook          `json:"hooks"`
	PinDir   string          `json:"pin_dir,omitempty"`
	NATS     string          `json:"nats"` // "following", "lost since ...: last routes kept (fail static)"
	Services []ServiceStatus `json:"services"`
	At       time.Time       `json:"at"`
}

// Status returns the agent's state now.
func (a *Agent) Status() Status {
	counts, _ := a.dp.Counts()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{Cgroup: a.dp.Cgroup(), Hooks: a.dp.Hooks(), PinDir: a.cfg.Pins(), At: a.now()}
	switch {
	case a.natsOK:
		st.NATS = "following " + a.cfg.Bucket
	case a.lostAt.IsZero():
		st.NATS = "not connected yet"
	default:
		st.NATS = fmt.Sprintf("lost since %s: last routes kept (fail static)", a.lostAt.Format(time.RFC3339))
	}
	for _, s := range a.svcs {
		ss := *a.state[s.Name]
		ss.Connects = map[string]uint64{}
		for k, n := range counts {
			if k.ServiceID == ss.id {
				ss.Connects[a.backendName(k.BackendID)] = n
			}
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

func (a *Agent) backendName(id uint32) string {
	if id == 0 || int(id) > len(a.idNames) {
		return "none"
	}
	return a.idNames[id-1]
}

// Run adopts what the datapath holds (the routes an earlier agent pinned
// stay in force), then follows the bucket until ctx ends. It keeps the
// last routes when NATS is gone, and writes the status file on every
// change.
func (a *Agent) Run(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	if err := a.adopt(); err != nil {
		return err
	}
	a.writeStatus()
	go a.watchConn(ctx, nc)
	var kv jetstream.KeyValue
	for {
		var err error
		if kv, err = js.KeyValue(ctx, a.cfg.Bucket); err == nil {
			break
		}
		a.log.Info("routes bucket not readable yet; retrying", "bucket", a.cfg.Bucket, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("steer: watch %s: %w", a.cfg.Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue // the initial values are in
			}
			a.apply(e.Key(), e.Value(), e.Operation() != jetstream.KeyValuePut)
		}
	}
}

// adopt reconciles the datapath with the configuration: an entry of a
// listed service whose backends this configuration allows is kept (and
// renumbered), any other is removed or emptied, and a listed service with
// no entry gets one with no backend.
func (a *Agent) adopt() error {
	entries, err := a.dp.Entries()
	if err != nil {
		return err
	}
	byAddr := map[netip.AddrPort]Entry{}
	for _, e := range entries {
		byAddr[e.Service] = e
	}
	listed := map[netip.AddrPort]bool{}
	for _, s := range a.svcs {
		listed[s.Address] = true
		e := Entry{Service: s.Address, ServiceID: a.state[s.Name].id}
		if old, ok := byAddr[s.Address]; ok && len(old.Backends) > 0 {
			if r, ok := a.routeOf(s, old); ok {
				e = a.entry(s, r)
				a.mu.Lock()
				a.state[s.Name].Route = &r
				a.mu.Unlock()
				a.log.Info("adopted the pinned route", "service", s.Name, "member", r.Member, "backends", len(e.Backends))
			} else {
				a.log.Warn("pinned route names a backend this configuration does not allow: removed", "service", s.Name)
			}
		}
		if err := a.dp.Set(e); err != nil {
			return err
		}
	}
	for addr := range byAddr {
		if !listed[addr] {
			if err := a.dp.Delete(addr); err != nil {
				return err
			}
			a.log.Info("pinned route of an address no longer listed: removed", "address", addr)
		}
	}
	return nil
}

// routeOf rebuilds the route a pinned entry carries, if every backend is a
// member this configuration allows for s.
func (a *Agent) routeOf(s routes.Service, e Entry) (routes.Route, bool) {
	r := routes.Route{V: routes.Version, Service: s.Name, Role: s.Role, Reason: "adopted from the pinned map (the last agent's route)", At: a.now()}
	for _, t := range e.Backends {
		found := false
		for _, cl := range s.Clusters {
			for m, ap := range a.allowed[cl] {
				if ap == t.Addr && !found {
					r.Spread = append(r.Spread, routes.Target{Cluster: cl, Member: m, Addr: ap.String(), Weight: t.Weight})
					found = true
				}
			}
		}
		if !found {
			return r, false
		}
	}
	r.Cluster, r.Member, r.Addr = r.Spread[0].Cluster, r.Spread[0].Member, r.Spread[0].Addr
	if len(r.Spread) == 1 {
		r.Spread = nil
	}
	return r, routes.Check(r, s, a.allowed) == nil
}

// entry is the datapath entry of a checked route.
func (a *Agent) entry(s routes.Service, r routes.Route) Entry {
	e := Entry{Service: s.Address, ServiceID: a.state[s.Name].id}
	for _, t := range r.Targets() {
		e.Backends = append(e.Backends, Target{Addr: a.allowed[t.Cluster][t.Member], ID: a.ids[t.Cluster+"/"+t.Member], Weight: t.Weight})
	}
	return e
}

// watchConn tracks the NATS connection for the status and the gauge, and
// rewrites the status file every 2 s.
func (a *Agent) watchConn(ctx context.Context, nc *nats.Conn) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for tick := 1; ; tick++ {
		if tick%10 == 0 {
			a.writeStatus() // fresh connect counts for `mciv steer status`
		}
		ok := nc.Status() == nats.CONNECTED
		a.mu.Lock()
		changed := ok != a.natsOK
		a.natsOK = ok
		if changed && !ok {
			a.lostAt = a.now()
		}
		a.mu.Unlock()
		if changed {
			if ok {
				a.natsUp.Set(1)
				a.log.Info("following the routes bucket", "bucket", a.cfg.Bucket)
			} else {
				a.natsUp.Set(0)
				a.log.Warn("lost NATS: keeping the last routes (fail static)")
			}
			a.writeStatus()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// apply checks and programs one bucket entry.
func (a *Agent) apply(key string, value []byte, deleted bool) {
	var svc *routes.Service
	for i := range a.svcs {
		if a.svcs[i].Name == key {
			svc = &a.svcs[i]
		}
	}
	if svc == nil {
		a.refused.WithLabelValues(key).Inc()
		a.log.Debug("route of a service not listed here: ignored", "service", key)
		return
	}
	var r routes.Route
	if deleted {
		r = routes.Route{V: routes.Version, Service: svc.Name, Role: svc.Role, Reason: "route deleted"}
	} else if err := json.Unmarshal(value, &r); err != nil {
		a.refuse(svc.Name, fmt.Errorf("%w: undecodable: %v", routes.ErrRefused, err))
		return
	}
	if err := routes.Check(r, *svc, a.allowed); err != nil {
		a.refuse(svc.Name, err)
		return
	}
	if err := a.dp.Set(a.entry(*svc, r)); err != nil {
		a.refuse(svc.Name, err)
		return
	}
	a.changes.WithLabelValues(svc.Name).Inc()
	a.log.Info("route applied", "service", svc.Name, "cluster", r.Cluster, "member", r.Member, "addr", r.Addr,
		"spread", len(r.Spread), "reason", r.Reason)
	a.mu.Lock()
	a.state[svc.Name].Route = &r
	a.state[svc.Name].Refused = ""
	a.mu.Unlock()
	a.writeStatus()
}

func (a *Agent) refuse(service string, err error) {
	a.refused.WithLabelValues(service).Inc()
	a.log.Warn("route refused; the last route stays", "service", service, "err", err)
	a.mu.Lock()
	a.state[service].Refused = err.Error()
	a.mu.Unlock()
	a.writeStatus()
}

// writeStatus writes the status file (best effort).
func (a *Agent) writeStatus() {
	if a.cfg.StatusFile == "" || a.cfg.StatusFile == "-" {
		return
	}
	data, err := json.MarshalIndent(a.Status(), "", "  ")
	if err != nil {
		return
	}
	if err := writeFileAtomic(a.cfg.StatusFile, data); err != nil {
		a.log.Debug("status file not written", "path", a.cfg.StatusFile, "err", err)
	}
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadStatus reads an agent's status file.
func ReadStatus(path string) (Status, error) {
	var st Status
	data, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("steer status: %w (is `mciv steer` or `mciv up` with steer.agent running?)", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("steer status %s: %w", path, err)
	}
	return st, nil
}

// connectsCollector exports the datapath's connect counters at scrape time.
type connectsCollector struct{ a *Agent }

var connectsDesc = prometheus.NewDesc("mciv_steer_connects_total",
	"Connects to a service address, per service and the backend they were steered to (none: no route).",
	[]string{"service", "backend"}, nil)

func (c *connectsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- connectsDesc }

func (c *connectsCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.a.dp.Counts()
	if err != nil {
		return
	}
	names := map[uint32]string{}
	for _, s := range c.a.svcs {
		names[c.a.state[s.Name].id] = s.Name
	}
	keys := make([]CountKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].ServiceID*1e6+keys[i].BackendID < keys[j].ServiceID*1e6+keys[j].BackendID
	})
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(connectsDesc, prometheus.CounterValue, float64(counts[k]), names[k.ServiceID], c.a.backendName(k.BackendID))
	}
}
