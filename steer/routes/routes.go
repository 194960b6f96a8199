// Package routes decides where each database service's new connections go,
// and checks routes received from the bus. It is pure: the caller brings
// the topology, the measurements and the clock.
//
// A read-write service goes to its cluster's current primary. A read-only
// service goes to the healthy member of its clusters (across clusters)
// with the lowest score (measured latency plus a penalty per connect
// error), never to one whose alerts are firing; once routed, it moves to a
// faster member only when that member has been better by Margin for Hold,
// so routes do not flap. A route whose member stops being eligible moves
// at once.
package routes

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Role is what a service serves.
type Role string

// Roles of services.
const (
	// ReadWrite services go to the primary.
	ReadWrite Role = "rw"
	// ReadOnly services go to the fastest healthy member.
	ReadOnly Role = "ro"
)

// Service is one configured database service.
type Service struct {
	Name     string
	Role     Role
	Address  netip.AddrPort // the service (virtual) address
	Clusters []string
}

// Member is one database member as the controller sees it now.
type Member struct {
	Cluster string
	Name    string
	Addr    netip.AddrPort
	// Primary is true for the cluster's leader.
	Primary bool
	// Healthy is Patroni's view: running or streaming.
	Healthy bool
	// Firing is true while an alert names this member's host.
	Firing bool
	// Latency is the measured connect latency (0: not measured yet), RTT
	// the collectors' tcp_rtt_seconds to the member, QueryLatency its
	// db_query_seconds (mean), and ErrorRate the recent share of failed
	// connects (0..1), from probes and the collectors' connect errors.
	Latency      time.Duration
	RTT          time.Duration
	QueryLatency time.Duration
	ErrorRate    float64
}

// Route says where new connections to a service go. Member "" means
// nowhere: connects are left alone.
type Route struct {
	V       int    `json:"v"`
	Service string `json:"service"`
	Role    Role   `json:"role"`
	Cluster string `json:"cluster,omitempty"`
	Member  string `json:"member,omitempty"`
	Addr    string `json:"addr,omitempty"` // host:port of the member
	// Spread, on a read-only route, lists the members new connections are
	// spread over by weight; the first is Cluster/Member/Addr. Empty: all
	// go to Member.
	Spread []Target  `json:"spread,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"` // the controller that wrote it
}

// Target is one member of a spread route and its share of connects.
type Target struct {
	Cluster string `json:"cluster"`
	Member  string `json:"member"`
	Addr    string `json:"addr"`
	Weight  uint32 `json:"weight"`
}

// MaxSpread is the most members a route spreads over (the datapath's limit).
const MaxSpread = 8

// Targets returns where the route sends connects: Spread, or Member with
// weight 1, or nothing.
func (r Route) Targets() []Target {
	if len(r.Spread) > 0 {
		return r.Spread
	}
	if r.Member == "" {
		return nil
	}
	return []Target{{Cluster: r.Cluster, Member: r.Member, Addr: r.Addr, Weight: 1}}
}

// Version is the schema version of Route records.
const Version = 1

// Same reports whether r and o send connects to the same place.
func (r Route) Same(o Route) bool {
	if r.Service != o.Service {
		return false
	}
	a, b := r.Targets(), o.Targets()
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Policy tunes read-only routing.
type Policy struct {
	// Margin: a faster member must score below current/(1+Margin).
	Margin float64
	// Hold: and keep doing so for this long.
	Hold time.Duration
	// ErrorPenalty is added to the score per unit of ErrorRate.
	ErrorPenalty time.Duration
	// Spread is the most members a read-only route spreads connects over
	// (0 or 1: one member). A member joins the spread when its score has
	// been within Margin (plus Slack) of the best for Hold, and leaves when
	// it has been beyond twice that for Hold/4, or at once when it is no
	// longer eligible.
	Spread int
	// Slack is added to the spread's margin, so members all much faster
	// than it count as equally fast.
	Slack time.Duration
}

// DefaultPolicy is 50 % better for 10 s, and a failed connect weighs 1 s;
// one member per route (no spread), 1 ms slack when spreading.
func DefaultPolicy() Policy {
	return Policy{Margin: 0.5, Hold: 10 * time.Second, ErrorPenalty: time.Second, Slack: time.Millisecond}
}

// Decider decides routes, remembering since when a better read-only member
// has been better (the hysteresis). Not safe for concurrent use.
type Decider struct {
	policy  Policy
	better  map[string]pending              // by service
	joining map[string]map[string]time.Time // service -> member key -> within the margin since
	leaving map[string]map[string]time.Time // service -> member key -> beyond twice the margin since
}

type pending struct {
	member string
	since  time.Time
}

// NewDecider returns a Decider with policy p.
func NewDecider(p Policy) *Decider {
	if p.Spread > MaxSpread {
		p.Spread = MaxSpread
	}
	return &Decider{policy: p, better: map[string]pending{}, joining: map[string]map[string]time.Time{},
		leaving: map[string]map[string]time.Time{}}
}

// score is what a read-only route minimises: the network latency (the
// larger of the connect probe and the collectors' RTT), the query latency,
// and the penalty of failed connects.
func (d *Decider) score(m Member) time.Duration {
	return max(m.Latency, m.RTT) + m.QueryLatency + time.Duration(m.ErrorRate*float64(d.policy.ErrorPenalty))
}

func key(m Member) string { return m.Cluster + "/" + m.Name }

func inClusters(svc Service, cluster string) bool {
	for _, c := range svc.Clusters {
		if c == cluster {
			return true
		}
	}
	return false
}

// Decide returns the route of svc at now given members (of every cluster)
// and the current route (nil if none).
func (d *Decider) Decide(now time.Time, svc Service, members []Member, current *Route) Route {
	var mine []Member
	for _, m := range members {
		if inClusters(svc, m.Cluster) && m.Addr.IsValid() {
			mine = append(mine, m)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return key(mine[i]) < key(mine[j]) })
	route := func(m Member, reason string) Route {
		return Route{V: Version, Service: svc.Name, Role: svc.Role, Cluster: m.Cluster, Member: m.Name,
			Addr: m.Addr.String(), Reason: reason, At: now}
	}
	keep := func() Route {
		r := *current
		return r
	}
	if svc.Role == ReadWrite {
		for _, m := range mine {
			if m.Primary {
				if current != nil && current.Member == m.Name && current.Cluster == m.Cluster && current.Addr == m.Addr.String() {
					return keep()
				}
				return route(m, fmt.Sprintf("%s is the primary of %s", m.Name, m.Cluster))
			}
		}
		if current != nil {
			return keep() // no primary known: keep the last one
		}
		return Route{V: Version, Service: svc.Name, Role: svc.Role, Reason: "no primary known", At: now}
	}
	var eligible []Member
	var cur *Member
	for i, m := range mine {
		if !m.Healthy || m.Firing {
			continue
		}
		eligible = append(eligible, m)
		if current != nil && current.Member == m.Name && current.Cluster == m.Cluster && current.Addr == m.Addr.String() {
			cur = &mine[i]
		}
	}
	if len(eligible) == 0 {
		delete(d.better, svc.Name)
		if current != nil && current.Member == "" {
			return keep()
		}
		return Route{V: Version, Service: svc.Name, Role: svc.Role, Reason: "no healthy member without firing alerts", At: now}
	}
	if d.policy.Spread > 1 {
		return d.spread(now, svc, eligible, current)
	}
	best := eligible[0]
	for _, m := range eligible[1:] {
		if d.score(m) < d.score(best) {
			best = m
		}
	}
	if cur == nil {
		delete(d.better, svc.Name)
		why := fmt.Sprintf("%s is the fastest healthy member (%s)", best.Name, d.score(best).Round(time.Microsecond))
		if current != nil && current.Member != "" {
			why = fmt.Sprintf("%s is no longer eligible; %s", current.Member, why)
		}
		return route(best, why)
	}
	cs, bs := d.score(*cur), d.score(best)
	if key(best) == key(*cur) || float64(cs) <= float64(bs)*(1+d.policy.Margin) {
		delete(d.better, svc.Name)
		return keep()
	}
	p, ok := d.better[svc.Name]
	if !ok || p.member != key(best) {
		d.better[svc.Name] = pending{member: key(best), since: now}
		return keep()
	}
	if now.Sub(p.since) < d.policy.Hold {
		return keep()
	}
	delete(d.better, svc.Name)
	return route(best, fmt.Sprintf("%s (%s) has been faster than %s (%s) for %s",
		best.Name, bs.Round(time.Microsecond), cur.Name, cs.Round(time.Microsecond), d.policy.Hold))
}

// spread decides a read-only route over up to Policy.Spread members.
func (d *Decider) spread(now time.Time, svc Service, eligible []Member, current *Route) Route {
	sort.SliceStable(eligible, func(i, j int) bool { return d.score(eligible[i]) < d.score(eligible[j]) })
	bs := float64(d.score(eligible[0]))
	join := time.Duration(bs*(1+d.policy.Margin)) + d.policy.Slack
	leave := time.Duration(bs*(1+2*d.policy.Margin)) + 2*d.policy.Slack
	inCur := map[string]bool{}
	if current != nil {
		for _, t := range current.Targets() {
			inCur[t.Cluster+"/"+t.Member+"@"+t.Addr] = true
		}
	}
	// A member beyond twice the margin leaves once it has stayed there for
	// a quarter of Hold (one slow probe does not evict it).
	out := d.leaving[svc.Name]
	if out == nil {
		out = map[string]time.Time{}
		d.leaving[svc.Name] = out
	}
	var kept, gone []Member
	for _, m := range eligible {
		k := key(m)
		if !inCur[k+"@"+m.Addr.String()] {
			delete(out, k)
			continue
		}
		if d.score(m) <= leave {
			delete(out, k)
			kept = append(kept, m)
			continue
		}
		t, ok := out[k]
		if !ok {
			out[k], t = now, now
		}
		if now.Sub(t) < d.policy.Hold/4 {
			kept = append(kept, m)
			continue
		}
		delete(out, k)
		gone = append(gone, m)
	}
	names := func(ms []Member) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Name)
		}
		return strings.Join(s, ", ")
	}
	var set []Member
	var why string
	if len(kept) == 0 {
		delete(d.joining, svc.Name)
		for _, m := range eligible {
			if d.score(m) <= join && len(set) < d.policy.Spread {
				set = append(set, m)
			}
		}
		why = fmt.Sprintf("spread over the fastest healthy members %s (best %s)", names(set), time.Duration(bs).Round(time.Microsecond))
		if current != nil && current.Member != "" {
			why = "the last members are no longer eligible or much slower; " + why
		}
	} else {
		set = kept
		since := d.joining[svc.Name]
		if since == nil {
			since = map[string]time.Time{}
			d.joining[svc.Name] = since
		}
		var joined []Member
		for _, m := range eligible {
			k := key(m)
			if inCur[k+"@"+m.Addr.String()] {
				continue
			}
			if d.score(m) > join {
				delete(since, k)
				continue
			}
			t, ok := since[k]
			if !ok {
				since[k] = now
				continue
			}
			if now.Sub(t) >= d.policy.Hold && len(set) < d.policy.Spread {
				set = append(set, m)
				joined = append(joined, m)
				delete(since, k)
			}
		}
		for k := range since {
			found := false
			for _, m := range eligible {
				found = found || key(m) == k
			}
			if !found {
				delete(since, k)
			}
		}
		switch {
		case len(joined) > 0 && len(gone) > 0:
			why = fmt.Sprintf("%s joined the spread (within the margin for %s); %s left it (slower)", names(joined), d.policy.Hold, names(gone))
		case len(joined) > 0:
			why = fmt.Sprintf("%s joined the spread (within the margin of the best for %s)", names(joined), d.policy.Hold)
		case len(gone) > 0:
			why = fmt.Sprintf("%s left the spread (slower than the best by more than twice the margin)", names(gone))
		default:
			why = "members left the spread (no longer eligible)"
		}
	}
	sort.Slice(set, func(i, j int) bool { return key(set[i]) < key(set[j]) })
	r := Route{V: Version, Service: svc.Name, Role: svc.Role, Reason: why, At: now}
	// Every member of the spread gets the same weight, by design, rather
	// than a weight derived from its latency:
	//   - the margin is what "as fast" means here: members within it differ
	//     by less than the noise of what is measured (a connect probe per
	//     interval, smoothed RTT and query means), so a weight derived from
	//     those differences would move with noise;
	//   - a connect-time weight fixes the split for the life of each
	//     connection (pools live for hours): re-weighting every few seconds
	//     would only churn where new connections go, not balance the load;
	//   - latency-proportional weights feed back on themselves (the faster
	//     member gets more connections, its queries slow down, its weight
	//     drops), which hysteresis only slows;
	//   - it is what SREs run today for Patroni replicas (HAProxy balance
	//     roundrobin over the healthy replicas, equal weights) and what
	//     they can predict from `mciv steer status`: N members, 1/N each.
	// A member clearly slower is taken out instead (beyond twice the
	// margin for Hold/4), and put back only after Hold within the margin.
	// Target.Weight stays in the route (the datapath honours it, Check
	// bounds it) so that a later policy can set it without a schema change.
	for _, m := range set {
		r.Spread = append(r.Spread, Target{Cluster: m.Cluster, Member: m.Name, Addr: m.Addr.String(), Weight: 1})
	}
	r.Cluster, r.Member, r.Addr = set[0].Cluster, set[0].Name, set[0].Addr.String()
	if len(set) == 1 {
		r.Spread = nil
	}
	if current != nil && r.Same(*current) {
		return *current
	}
	return r
}

// Backend is a member a service may be routed to, as an agent's own
// configuration lists it.
type Backend struct {
	Cluster, Name string
	Addr          netip.AddrPort
}

// ErrRefused wraps every reason Check refuses a route.
var ErrRefused = errors.New("route refused")

// Check verifies a route received from the bus against svc and the
// backends the checker's configuration allows (allowed[cluster][member]):
// the service, its role, and a backend of one of its clusters at exactly
// that member's configured address. An empty Member (no route) is valid.
func Check(r Route, svc Service, allowed map[string]map[string]netip.AddrPort) error {
	switch {
	case r.V != Version:
		return fmt.Errorf("%w: schema version %d, want %d", ErrRefused, r.V, Version)
	case r.Service != svc.Name:
		return fmt.Errorf("%w: route names service %q, not %q", ErrRefused, r.Service, svc.Name)
	case r.Role != svc.Role:
		return fmt.Errorf("%w: route of %s has role %q, the service is %q", ErrRefused, svc.Name, r.Role, svc.Role)
	case r.Member == "" && len(r.Spread) == 0:
		return nil
	case len(r.Spread) > 0 && svc.Role != ReadOnly:
		return fmt.Errorf("%w: route of %s spreads over %d members; only a read-only service may", ErrRefused, svc.Name, len(r.Spread))
	case len(r.Spread) > MaxSpread:
		return fmt.Errorf("%w: route of %s spreads over %d members, at most %d", ErrRefused, svc.Name, len(r.Spread), MaxSpread)
	case len(r.Spread) > 0 && (r.Spread[0].Cluster != r.Cluster || r.Spread[0].Member != r.Member || r.Spread[0].Addr != r.Addr):
		return fmt.Errorf("%w: route of %s: the first of the spread is not %s/%s", ErrRefused, svc.Name, r.Cluster, r.Member)
	}
	seen := map[string]bool{}
	for _, t := range r.Targets() {
		if !inClusters(svc, t.Cluster) {
			return fmt.Errorf("%w: cluster %q is not one of %s's clusters %v", ErrRefused, t.Cluster, svc.Name, svc.Clusters)
		}
		want, ok := allowed[t.Cluster][t.Member]
		if !ok {
			return fmt.Errorf("%w: %q is not a known member of cluster %s", ErrRefused, t.Member, t.Cluster)
		}
		got, err := netip.ParseAddrPort(t.Addr)
		if err != nil || got != want {
			return fmt.Errorf("%w: %s/%s is at %s, the route says %q", ErrRefused, t.Cluster, t.Member, want, t.Addr)
		}
		if t.Weight == 0 || t.Weight > 1000 {
			return fmt.Errorf("%w: %s/%s has weight %d, want 1..1000", ErrRefused, t.Cluster, t.Member, t.Weight)
		}
		if seen[t.Cluster+"/"+t.Member] {
			return fmt.Errorf("%w: %s/%s listed twice", ErrRefused, t.Cluster, t.Member)
		}
		seen[t.Cluster+"/"+t.Member] = true
	}
	return nil
}
