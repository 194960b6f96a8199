package collector

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
)

// Signals of the aggregates map.
const (
	signalResets         = "tcp_resets_total"
	signalConnectSeconds = "tcp_connect_seconds"
	signalConnectErrors  = "tcp_connect_errors_total"
	signalRTT            = "tcp_rtt_seconds"
	signalDiskIO         = "disk_io_seconds"
	signalDBQuery        = "db_query_seconds"
)

// overflowValue replaces the high-cardinality label values of the series
// beyond a signal's series limit.
const overflowValue = "other"

// aggSeries is the label part of an aggregates key: one series.
type aggSeries struct {
	signal, family uint16
	aux, aux2      uint32
	addr           [16]byte
	netns          uint32
	cgroup         uint64
}

// labelNamer names what the kernel keys by number.
type labelNamer interface {
	// device names a block device by its kernel dev_t.
	device(dev uint32) string
	// instance names a database instance by its id ("" for one whose
	// samples are not this host's: they are dropped).
	instance(id uint32) string
	// cgroup is the control group of a database instance ("" if none
	// besides the root): a container's or a service's.
	cgroup(id uint32) string
	// cgroupPath names a cgroup id of hierarchy h ("" for the root or
	// an unknown id).
	cgroupPath(h cgroupHierarchy, id uint64) string
}

// readAggregates reads every value of the aggregates map.
func readAggregates(m *ebpf.Map) (map[bpf.TCPAggKey]uint64, error) {
	cur := make(map[bpf.TCPAggKey]uint64)
	var (
		k bpf.TCPAggKey
		v uint64
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		cur[k] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", bpf.TCPMapAggregates, err)
	}
	return cur, nil
}

// addHotAggregates adds to cur the values of the hot_aggregates map: per
// CPU, and each bucket with its own sum. They become the aggregates map's
// form: a bucket key's value is its count summed over CPUs, and the key
// with bucket AggSumBucket holds the sum of every bucket's sum.
func addHotAggregates(cur map[bpf.TCPAggKey]uint64, m *ebpf.Map) error {
	var (
		k    bpf.TCPAggKey
		vals []bpf.TCPAggHist
	)
	it := m.Iterate()
	for it.Next(&k, &vals) {
		sum := k
		sum.Bucket = bpf.AggSumBucket
		for _, v := range vals {
			cur[k] += v.Count
			cur[sum] += v.Sum
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", bpf.TCPMapHotAggregates, err)
	}
	return nil
}

// aggregated is one series being assembled from the deltas of its keys.
type aggregated struct {
	series wire.Series
	weight uint64 // observations or increase: what the limit keeps first
}

// aggregateSeries turns the increases of one interval into series, at most
// maxPerSignal per signal: the busiest are kept and the rest are merged into
// one series whose peer, device or instance is "other". It returns the
// series sorted by signal and labels, and how many series were merged away
// per signal.
//
// TCP series of a network namespace other than hostNS are labelled netns.
func aggregateSeries(deltas map[bpf.TCPAggKey]uint64, names labelNamer, maxPerSignal int, hostNS uint32) ([]wire.Series, map[string]int) {
	type parts struct {
		buckets map[int32]uint64
		sum     uint64
		count   uint64
	}
	bySeries := make(map[aggSeries]*parts)
	for k, n := range deltas {
		s := aggSeries{signal: k.Signal, family: k.Family, aux: k.Aux, aux2: k.Aux2, addr: k.Addr, netns: k.Netns, cgroup: k.Cgroup}
		p := bySeries[s]
		if p == nil {
			p = &parts{}
			bySeries[s] = p
		}
		switch {
		case !isHistogram(k.Signal):
			p.count += n
		case k.Bucket == bpf.AggSumBucket:
			p.sum += n
		default:
			if p.buckets == nil {
				p.buckets = make(map[int32]uint64)
			}
			p.buckets[int32(k.Bucket)] += n
			p.count += n
		}
	}
	// Build the series; keys naming the same labels (an IPv4 peer seen
	// through an IPv6 socket) are merged.
	bySignal := make(map[string]map[string]*aggregated)
	for s, p := range bySeries {
		name, labels, ok := describe(s, names)
		if !ok {
			continue
		}
		if v, ok := netnsLabel(s.netns, hostNS); ok && isTCP(s.signal) {
			labels = addLabel(labels, wire.Label{Name: "netns", Value: v})
		}
		if cg := cgroupLabel(s, names); cg != "" {
			labels = addLabel(labels, wire.Label{Name: "cgroup", Value: cg})
		}
		one := wire.Series{Signal: name, Labels: labels}
		if isHistogram(s.signal) {
			if p.count == 0 {
				continue // only a sum left over from an evicted bucket
			}
			one.Kind = wire.KindHistogram
			one.Hist = histogramOf(p.buckets, p.sum)
		} else {
			one.Kind = wire.KindCounter
			one.Value = float64(p.count)
		}
		merge(bySignal, &aggregated{series: one, weight: p.count})
	}
	var out []wire.Series
	dropped := make(map[string]int)
	for name, set := range bySignal {
		all := make([]*aggregated, 0, len(set))
		for _, a := range set {
			all = append(all, a)
		}
		if maxPerSignal > 0 && len(all) > maxPerSignal {
			slices.SortFunc(all, func(a, b *aggregated) int {
				return cmp.Or(cmp.Compare(b.weight, a.weight), cmp.Compare(labelString(a.series.Labels), labelString(b.series.Labels)))
			})
			keep := make(map[string]map[string]*aggregated)
			for _, a := range all[:maxPerSignal-1] {
				merge(keep, a)
			}
			for _, a := range all[maxPerSignal-1:] {
				a.series.Labels = overflowLabels(a.series.Labels)
				merge(keep, a)
			}
			dropped[name] = len(all) - maxPerSignal + 1
			all = all[:0]
			for _, a := range keep[name] {
				all = append(all, a)
			}
		}
		for _, a := range all {
			out = append(out, a.series)
		}
	}
	slices.SortFunc(out, func(a, b wire.Series) int {
		return cmp.Or(cmp.Compare(a.Signal, b.Signal), cmp.Compare(labelString(a.Labels), labelString(b.Labels)))
	})
	return out, dropped
}

// merge adds a into the set of its signal, summing with a series of the
// same labels.
func merge(bySignal map[string]map[string]*aggregated, a *aggregated) {
	set := bySignal[a.series.Signal]
	if set == nil {
		set = make(map[string]*aggregated)
		bySignal[a.series.Signal] = set
	}
	key := labelString(a.series.Labels)
	prev, ok := set[key]
	if !ok {
		set[key] = a
		return
	}
	prev.weight += a.weight
	prev.series.Value += a.series.Value
	if prev.series.Hist != nil {
		prev.series.Hist = histo.Merge(prev.series.Hist, a.series.Hist)
	}
}

// overflowLabels replaces the values of the unbounded labels, and drops
// the cgroup, which some series of a signal lack: the overflow is one
// series whatever the cgroups.
func overflowLabels(ls []wire.Label) []wire.Label {
	out := slices.DeleteFunc(slices.Clone(ls), func(l wire.Label) bool { return l.Name == "cgroup" })
	for i := range out {
		switch out[i].Name {
		case "peer", "device", "instance", "local_port":
			out[i].Value = overflowValue
		}
	}
	return out
}

func labelString(ls []wire.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(l.Value)
		b.WriteByte(',')
	}
	return b.String()
}

// isTCP reports whether signal is one of the TCP probes' (keyed by
// network namespace).
func isTCP(signal uint16) bool {
	switch signal {
	case bpf.AggTCPConnectSeconds, bpf.AggTCPRTTSeconds, bpf.AggTCPResetsSent, bpf.AggTCPResetsReceived, bpf.AggTCPConnectErrors:
		return true
	}
	return false
}

// addLabel inserts l into ls, which is sorted by name, keeping the order.
func addLabel(ls []wire.Label, l wire.Label) []wire.Label {
	i, _ := slices.BinarySearchFunc(ls, l.Name, func(x wire.Label, name string) int { return cmp.Compare(x.Name, name) })
	return slices.Insert(ls, i, l)
}

func isHistogram(signal uint16) bool {
	switch signal {
	case bpf.AggTCPConnectSeconds, bpf.AggTCPRTTSeconds, bpf.AggDiskIOSeconds, bpf.AggDBQuerySeconds:
		return true
	}
	return false
}

// histogramOf builds a wire.Histogram from bucket counts and a sum of
// nanoseconds.
func histogramOf(buckets map[int32]uint64, sumNs uint64) *wire.Histogram {
	h := &wire.Histogram{Sum: float64(sumNs) * histo.Unit, Buckets: make([]wire.Bucket, 0, len(buckets))}
	for i, n := range buckets {
		h.Buckets = append(h.Buckets, wire.Bucket{Index: i, Count: n})
		h.Count += n
	}
	slices.SortFunc(h.Buckets, func(a, b wire.Bucket) int { return cmp.Compare(a.Index, b.Index) })
	return h
}

// describe names the signal of a series and its labels, sorted by name.
func describe(s aggSeries, names labelNamer) (string, []wire.Label, bool) {
	peer := func() string {
		if s.aux == 0 {
			if a, ok := addrOf(s.family, s.addr); ok {
				return a.String()
			}
		}
		return endpoint(s.family, s.addr, uint16(s.aux))
	}
	switch s.signal {
	case bpf.AggTCPResetsSent, bpf.AggTCPResetsReceived:
		dir := "sent"
		if s.signal == bpf.AggTCPResetsReceived {
			dir = "received"
		}
		return signalResets, []wire.Label{
			{Name: "direction", Value: dir},
			{Name: "local_port", Value: strconv.Itoa(int(s.aux2))},
			{Name: "peer", Value: peer()},
		}, true
	case bpf.AggTCPConnectErrors:
		return signalConnectErrors, []wire.Label{{Name: "peer", Value: peer()}}, true
	case bpf.AggTCPConnectSeconds:
		return signalConnectSeconds, []wire.Label{{Name: "peer", Value: peer()}}, true
	case bpf.AggTCPRTTSeconds:
		return signalRTT, []wire.Label{{Name: "peer", Value: peer()}}, true
	case bpf.AggDiskIOSeconds:
		return signalDiskIO, []wire.Label{
			{Name: "device", Value: names.device(s.aux)},
			{Name: "op", Value: diskOpName(s.aux2)},
		}, true
	case bpf.AggDBQuerySeconds:
		inst := names.instance(s.aux)
		if inst == "" {
			return "", nil, false
		}
		labels := []wire.Label{
			{Name: "instance", Value: inst},
			{Name: "protocol", Value: protocolName(s.aux2)},
		}
		if cg := names.cgroup(s.aux); cg != "" {
			labels = append([]wire.Label{{Name: "cgroup", Value: cg}}, labels...)
		}
		return signalDBQuery, labels, true
	}
	return "", nil, false
}

// cgroupLabel names the cgroup of a TCP series (the socket's) or a disk
// series (the cgroup the I/O is charged to); "" for none. A database
// series has its instance's cgroup from describe.
func cgroupLabel(s aggSeries, names labelNamer) string {
	switch {
	case isTCP(s.signal):
		return names.cgroupPath(cgroupSockets, s.cgroup)
	case s.signal == bpf.AggDiskIOSeconds:
		return names.cgroupPath(cgroupIO, s.cgroup)
	}
	return ""
}

func diskOpName(op uint32) string {
	switch op {
	case bpf.DiskOpRead:
		return "read"
	case bpf.DiskOpWrite:
		return "write"
	case bpf.DiskOpFlush:
		return "flush"
	case bpf.DiskOpDiscard:
		return "discard"
	}
	return "other"
}

// Query protocols (aux2 of db_query_seconds keys).
const (
	protocolSimple   = 0
	protocolExtended = 1
	protocolUnknown  = 2 // socket-level timing that did not see the request
)

func protocolName(p uint32) string {
	switch p {
	case protocolSimple:
		return "simple"
	case protocolExtended:
		return "extended"
	}
	return "unknown"
}
