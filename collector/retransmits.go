package collector

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/cilium/ebpf"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/wire"
)

// Signals this file publishes.
const (
	signalRetransmits = "tcp_retransmits_total"
	signalUp          = "mciv_collector_up"
)

// Address families as the kernel numbers them.
const (
	afInet  = 2
	afInet6 = 10
)

// deltaTracker turns successive readings of kernel counters into the
// increase of each counter between two readings.
//
// The counters live in an LRU hash: under pressure the kernel evicts the
// least recently used key, and a key seen again later starts from zero.
// So a key missing from a reading is forgotten, a key that is new counts
// fully, and a counter lower than before was evicted and re-created in
// between: its whole value is the increase. Increases that happened between
// the last reading and an eviction are lost; nothing is ever negative.
type deltaTracker[K comparable] struct {
	prev map[K]uint64
}

// update records the reading cur and returns the non-zero increases since
// the previous reading.
func (d *deltaTracker[K]) update(cur map[K]uint64) map[K]uint64 {
	deltas := make(map[K]uint64)
	for k, v := range cur {
		p, seen := d.prev[k]
		var inc uint64
		switch {
		case !seen:
			inc = v
		case v >= p:
			inc = v - p
		default: // evicted and re-created since the last reading
			inc = v
		}
		if inc > 0 {
			deltas[k] = inc
		}
	}
	d.prev = cur
	return deltas
}

// readRetransmits reads every counter of the retransmit map.
func readRetransmits(m *ebpf.Map) (map[bpf.TCPRetransKey]uint64, error) {
	cur := make(map[bpf.TCPRetransKey]uint64)
	var (
		k bpf.TCPRetransKey
		v uint64
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		cur[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", bpf.TCPMapTcpRetransmits, err)
	}
	return cur, nil
}

// readDropped sums the per-CPU count of events the ring buffer dropped.
func readDropped(m *ebpf.Map) (uint64, error) {
	var perCPU []uint64
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read %s: %w", bpf.TCPMapEventsDropped, err)
	}
	var sum uint64
	for _, n := range perCPU {
		sum += n
	}
	return sum, nil
}

// addrOf returns the address in a kernel (family, 16 bytes) pair, with
// IPv4-mapped IPv6 addresses unmapped so that one peer has one name
// whichever socket family reached it.
func addrOf(family uint16, b [16]byte) (netip.Addr, bool) {
	switch family {
	case afInet:
		return netip.AddrFrom4([4]byte(b[:4])), true
	case afInet6:
		return netip.AddrFrom16(b).Unmap(), true
	}
	return netip.Addr{}, false
}

// endpoint formats an address and port as "127.0.0.1:5432" or "[::1]:5432".
func endpoint(family uint16, b [16]byte, port uint16) string {
	a, ok := addrOf(family, b)
	if !ok {
		return fmt.Sprintf("family(%d):%d", family, port)
	}
	return netip.AddrPortFrom(a, port).String()
}

// retransmitSeries turns the increases of one interval into series, one per
// (peer, local port), sorted, labels sorted by name. Keys that name the
// same peer (IPv4 and IPv4-mapped) are added up.
// A key of a network namespace other than hostNS is labelled netns.
func retransmitSeries(deltas map[bpf.TCPRetransKey]uint64, hostNS uint32, names labelNamer) []wire.Series {
	type labels struct{ peer, localPort, netns, cgroup string }
	sums := make(map[labels]uint64, len(deltas))
	for k, n := range deltas {
		l := labels{
			peer:      endpoint(k.Family, k.Peer, k.PeerPort),
			localPort: strconv.Itoa(int(k.LocalPort)),
			cgroup:    names.cgroupPath(cgroupSockets, k.Cgroup),
		}
		l.netns, _ = netnsLabel(k.Netns, hostNS)
		sums[l] += n
	}
	out := make([]wire.Series, 0, len(sums))
	for l, n := range sums {
		var ls []wire.Label
		if l.cgroup != "" {
			ls = append(ls, wire.Label{Name: "cgroup", Value: l.cgroup})
		}
		ls = append(ls, wire.Label{Name: "local_port", Value: l.localPort})
		if l.netns != "" {
			ls = append(ls, wire.Label{Name: "netns", Value: l.netns})
		}
		ls = append(ls, wire.Label{Name: "peer", Value: l.peer})
		out = append(out, wire.Series{
			Signal: signalRetransmits,
			Kind:   wire.KindCounter,
			Labels: ls,
			Value:  float64(n),
		})
	}
	slices.SortFunc(out, func(a, b wire.Series) int {
		return cmp.Or(
			cmp.Compare(a.Label("peer"), b.Label("peer")),
			cmp.Compare(a.Label("local_port"), b.Label("local_port")),
			cmp.Compare(a.Label("netns"), b.Label("netns")),
			cmp.Compare(a.Label("cgroup"), b.Label("cgroup")),
		)
	})
	return out
}

// upSeries says that the collector runs, so that a host without any
// kernel activity still shows up.
func upSeries() wire.Series {
	return wire.Series{Signal: signalUp, Kind: wire.KindGauge, Value: 1}
}
