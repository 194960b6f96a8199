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
	V       int       `json:"v"`
	Service string    `json:"service"`
	Role    Role      `json:"role"`
	Cluster string    `json:"cluster,omitempty"`
	Member  string    `json:"member,omitempty"`
	Addr    string    `json:"addr,omitempty"` // host:port of the member
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// Version is the schema version of Route records.
const Version = 1

// Same reports whether r and o send connects to the same place.
func (r Route) Same(o Route) bool {
	return r.Service == o.Service && r.Cluster == o.Cluster && r.Member == o.Member && r.Addr == o.Addr
}

// Policy tunes read-only routing.
type Policy struct {
	// Margin: a faster member must score below current/(1+Margin).
	Margin float64
	// Hold: and keep doing so for this long.
	Hold time.Duration
	// ErrorPenalty is added to the score per unit of ErrorRate.
	ErrorPenalty time.Duration
}

// DefaultPolicy is 50 % better for 10 s, and a failed connect weighs 1 s.
func DefaultPolicy() Policy {
	return Policy{Margin: 0.5, Hold: 10 * time.Second, ErrorPenalty: time.Second}
}

// Decider decides routes, remembering since when a better read-only member
// has been better (the hysteresis). Not safe for concurrent use.
type Decider struct {
	policy Policy
	better map[string]pending // by service
}

type pending struct {
	member string
	since  time.Time
}

// NewDecider returns a Decider with policy p.
func NewDecider(p Policy) *Decider {
	return &Decider{policy: p, better: map[string]pending{}}
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
	case r.Member == "":
		return nil
	case !inClusters(svc, r.Cluster):
		return fmt.Errorf("%w: cluster %q is not one of %s's clusters %v", ErrRefused, r.Cluster, svc.Name, svc.Clusters)
	}
	want, ok := allowed[r.Cluster][r.Member]
	if !ok {
		return fmt.Errorf("%w: %q is not a known member of cluster %s", ErrRefused, r.Member, r.Cluster)
	}
	got, err := netip.ParseAddrPort(r.Addr)
	if err != nil || got != want {
		return fmt.Errorf("%w: %s/%s is at %s, the route says %q", ErrRefused, r.Cluster, r.Member, want, r.Addr)
	}
	return nil
}
