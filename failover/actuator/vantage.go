package actuator

import (
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

// Degradation is one host's view of a peer over the evidence window.
type Degradation struct {
	// Batches is how many of the host's batches showed the peer degraded.
	Batches int `json:"batches"`
	// Signal and Max describe the worst series seen.
	Signal string  `json:"signal"`
	Max    float64 `json:"max"`
}

// Observer remembers, per cluster and host, when the analyzer last received
// a sample batch and which peers the host saw degraded. It is safe for
// concurrent use.
type Observer struct {
	signals  map[string]float64
	keep     time.Duration
	mu       sync.Mutex
	clusters map[string]*clusterView
}

type clusterView struct {
	seen  map[string]time.Time          // host → last batch received
	marks map[string]map[string][]point // host → peer → degraded batches
}

type point struct {
	at     time.Time
	signal string
	value  float64
}

// NewObserver returns an Observer that counts the given signals and keeps
// evidence for keep.
func NewObserver(signals []SignalThreshold, keep time.Duration) *Observer {
	m := make(map[string]float64, len(signals))
	for _, s := range signals {
		m[s.Signal] = s.Min
	}
	return &Observer{signals: m, keep: keep, clusters: map[string]*clusterView{}}
}

// Observe records batch b, received at now.
func (o *Observer) Observe(b *wire.Batch, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cv := o.clusters[b.Cluster]
	if cv == nil {
		cv = &clusterView{seen: map[string]time.Time{}, marks: map[string]map[string][]point{}}
		o.clusters[b.Cluster] = cv
	}
	cv.seen[b.Host] = now
	worst := map[string]point{} // peer → worst series in this batch
	for i := range b.Series {
		s := &b.Series[i]
		min, ok := o.signals[s.Signal]
		if !ok {
			continue
		}
		peer := s.Label("peer")
		if peer == "" {
			continue
		}
		v := s.Value
		if s.Kind == wire.KindHistogram {
			v = 0
			if s.Hist != nil && s.Hist.Count > 0 {
				v = s.Hist.Sum / float64(s.Hist.Count)
			}
		}
		if v < min {
			continue
		}
		if w, ok := worst[peer]; !ok || v/min > w.value/o.signals[w.signal] {
			worst[peer] = point{at: now, signal: s.Signal, value: v}
		}
	}
	peers := cv.marks[b.Host]
	if peers == nil {
		peers = map[string][]point{}
		cv.marks[b.Host] = peers
	}
	for peer, p := range worst {
		peers[peer] = append(peers[peer], p)
	}
	// Forget old evidence.
	cut := now.Add(-o.keep)
	for peer, pts := range peers {
		i := 0
		for i < len(pts) && pts[i].at.Before(cut) {
			i++
		}
		if i == len(pts) {
			delete(peers, peer)
		} else if i > 0 {
			peers[peer] = append(pts[:0], pts[i:]...)
		}
	}
}

// Seen returns the hosts of cluster whose last batch arrived at or after
// since, sorted.
func (o *Observer) Seen(cluster string, since time.Time) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	cv := o.clusters[cluster]
	if cv == nil {
		return nil
	}
	var out []string
	for h, at := range cv.seen {
		if !at.Before(since) {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// DegradedTowards returns, per host of cluster, its degraded view of the
// peer at addr ("host:port") since the given time. With portToo false only
// the address part of the peer label must match.
func (o *Observer) DegradedTowards(cluster, addr string, portToo bool, since time.Time) map[string]Degradation {
	o.mu.Lock()
	defer o.mu.Unlock()
	cv := o.clusters[cluster]
	out := map[string]Degradation{}
	if cv == nil || addr == "" {
		return out
	}
	for host, peers := range cv.marks {
		var d Degradation
		for peer, pts := range peers {
			if !peerMatches(peer, addr, portToo) {
				continue
			}
			for _, p := range pts {
				if p.at.Before(since) {
					continue
				}
				d.Batches++
				if p.value > d.Max {
					d.Max, d.Signal = p.value, p.signal
				}
			}
		}
		if d.Batches > 0 {
			out[host] = d
		}
	}
	return out
}

// DegradedAny reports how many batches of host since the given time showed
// any peer other than except degraded: the host's own trouble.
func (o *Observer) DegradedAny(cluster, host, except string, portToo bool, since time.Time) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	cv := o.clusters[cluster]
	if cv == nil {
		return 0
	}
	n := 0
	for peer, pts := range cv.marks[host] {
		if except != "" && peerMatches(peer, except, portToo) {
			continue
		}
		for _, p := range pts {
			if !p.at.Before(since) {
				n++
			}
		}
	}
	return n
}

// peerMatches compares a peer label with "host:port".
func peerMatches(peer, addr string, portToo bool) bool {
	if portToo {
		return normAddrPort(peer) == normAddrPort(addr)
	}
	return hostPart(peer) == hostPart(addr)
}

func normAddrPort(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return s
}

func hostPart(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}

// joinHostPort formats a member's address like the collector's peer label.
func joinHostPort(host string, port int) string {
	if host == "" {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
	}
	return host + ":" + strconv.Itoa(port)
}
