package collector

import (
	"fmt"
	"math"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/histo"
)

type fakeNames struct{}

func (fakeNames) device(dev uint32) string  { return fmt.Sprintf("dev%d", dev) }
func (fakeNames) instance(id uint32) string { return fmt.Sprintf("postgres:%d", id) }
func (fakeNames) cgroup(id uint32) string {
	if id == 7 {
		return "/system.slice/postgresql@15-main.service"
	}
	return ""
}

func (fakeNames) cgroupPath(h cgroupHierarchy, id uint64) string {
	switch {
	case id == 0:
		return ""
	case h == cgroupIO:
		return fmt.Sprintf("/io/%d", id)
	}
	return fmt.Sprintf("/cg/%d", id)
}

func v4(a, b, c, d byte) [16]byte { return [16]byte{a, b, c, d} }

func TestAggregateSeriesHistogramAndCounters(t *testing.T) {
	rtt := func(bucket uint32) bpf.TCPAggKey {
		return bpf.TCPAggKey{Signal: bpf.AggTCPRTTSeconds, Family: afInet, Addr: v4(10, 0, 0, 1), Bucket: bucket}
	}
	ms := uint64(1_000_000)
	deltas := map[bpf.TCPAggKey]uint64{
		rtt(uint32(histo.Index(ms))):     3,
		rtt(uint32(histo.Index(2 * ms))): 1,
		rtt(bpf.AggSumBucket):            5 * ms,
		{Signal: bpf.AggTCPResetsSent, Family: afInet, Addr: v4(10, 0, 0, 2), Aux: 5432, Aux2: 40000}:   2,
		{Signal: bpf.AggDiskIOSeconds, Aux: 253 << 20, Aux2: bpf.DiskOpFlush, Bucket: 100}:              1,
		{Signal: bpf.AggDiskIOSeconds, Aux: 253 << 20, Aux2: bpf.DiskOpFlush, Bucket: bpf.AggSumBucket}: 100,
		{Signal: bpf.AggDBQuerySeconds, Aux: 5432, Aux2: protocolExtended, Bucket: 7}:                   1,
		{Signal: bpf.AggDBQuerySeconds, Aux: 5432, Aux2: protocolExtended, Bucket: bpf.AggSumBucket}:    7,
		{Signal: bpf.AggDBQuerySeconds, Aux: 7, Aux2: protocolUnknown, Bucket: 7}:                       1,
		{Signal: bpf.AggDBQuerySeconds, Aux: 7, Aux2: protocolUnknown, Bucket: bpf.AggSumBucket}:        7,
		{Signal: 999}: 1, // unknown: ignored
	}
	got, dropped := aggregateSeries(deltas, fakeNames{}, 10, 0)
	if len(dropped) != 0 {
		t.Errorf("dropped %v", dropped)
	}
	want := []string{
		"db_query_seconds{cgroup=/system.slice/postgresql@15-main.service,instance=postgres:7,protocol=unknown,}",
		"db_query_seconds{instance=postgres:5432,protocol=extended,}",
		"disk_io_seconds{device=dev265289728,op=flush,}",
		"tcp_resets_total{direction=sent,local_port=40000,peer=10.0.0.2:5432,}",
		"tcp_rtt_seconds{peer=10.0.0.1,}",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d series: %+v", len(got), got)
	}
	for i, s := range got {
		if k := s.Signal + "{" + labelString(s.Labels) + "}"; k != want[i] {
			t.Errorf("series %d = %s, want %s", i, k, want[i])
		}
	}
	h := got[4].Hist
	if h.Count != 4 || math.Abs(h.Sum-0.005) > 1e-12 || len(h.Buckets) != 2 || h.Buckets[0].Index > h.Buckets[1].Index {
		t.Errorf("rtt histogram %+v", h)
	}
	if p50 := histo.Quantile(h, 0.5); math.Abs(p50-0.001)/0.001 > 0.01 {
		t.Errorf("p50 %v", p50)
	}
	if got[3].Value != 2 {
		t.Errorf("resets %v", got[2].Value)
	}
}

func TestAggregateSeriesLimit(t *testing.T) {
	deltas := map[bpf.TCPAggKey]uint64{}
	for i := range 10 {
		k := bpf.TCPAggKey{Signal: bpf.AggTCPConnectErrors, Family: afInet, Addr: v4(10, 0, 0, byte(i)), Aux: 5432}
		deltas[k] = uint64(100 - i) // 10.0.0.0 busiest
	}
	got, dropped := aggregateSeries(deltas, fakeNames{}, 3, 0)
	if dropped[signalConnectErrors] != 8 {
		t.Errorf("dropped %v", dropped)
	}
	if len(got) != 3 {
		t.Fatalf("%d series: %+v", len(got), got)
	}
	total := 0.0
	peers := map[string]float64{}
	for _, s := range got {
		total += s.Value
		peers[s.Label("peer")] = s.Value
	}
	if total != 955 || peers["10.0.0.0:5432"] != 100 || peers["10.0.0.1:5432"] != 99 || peers[overflowValue] != 955-199 {
		t.Errorf("peers %v", peers)
	}
}

// TestAddHotAggregates reads a real hot_aggregates map: each bucket's count
// and sum, per CPU, become the aggregates map's bucket keys and one sum key.
func TestAddHotAggregates(t *testing.T) {
	requireKernel(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	spec, err := bpf.LoadTCP()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(spec.Maps[bpf.TCPMapHotAggregates])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ncpu := ebpf.MustPossibleCPU()
	key := func(bucket uint32) bpf.TCPAggKey {
		return bpf.TCPAggKey{Signal: bpf.AggTCPRTTSeconds, Family: afInet, Addr: v4(10, 0, 0, 1), Bucket: bucket}
	}
	put := func(bucket uint32, count, sum uint64) {
		vals := make([]bpf.TCPAggHist, ncpu)
		for i := range vals {
			vals[i] = bpf.TCPAggHist{Count: count, Sum: sum}
		}
		if err := m.Put(key(bucket), vals); err != nil {
			t.Fatal(err)
		}
	}
	put(100, 2, 300)
	put(200, 1, 5000)
	cur := map[bpf.TCPAggKey]uint64{key(5): 9} // what the aggregates map held
	if err := addHotAggregates(cur, m); err != nil {
		t.Fatal(err)
	}
	n := uint64(ncpu)
	want := map[bpf.TCPAggKey]uint64{key(5): 9, key(100): 2 * n, key(200): n, key(bpf.AggSumBucket): 5300 * n}
	if len(cur) != len(want) {
		t.Errorf("got %v, want %v", cur, want)
	}
	for k, v := range want {
		if cur[k] != v {
			t.Errorf("bucket %d: %d, want %d", k.Bucket, cur[k], v)
		}
	}
}

// TestAggregateSeriesCgroup labels TCP series with the socket's cgroup and
// disk series with the I/O's, keeps them apart from the root's, and merges
// them into "other" beyond the series limit.
func TestAggregateSeriesCgroup(t *testing.T) {
	rtt := bpf.TCPAggKey{Signal: bpf.AggTCPRTTSeconds, Family: afInet, Addr: v4(10, 0, 0, 1), Bucket: 100}
	inCgroup := rtt
	inCgroup.Cgroup = 5
	disk := bpf.TCPAggKey{Signal: bpf.AggDiskIOSeconds, Aux: 8 << 20, Aux2: bpf.DiskOpWrite, Bucket: 100, Cgroup: 9}
	deltas := map[bpf.TCPAggKey]uint64{rtt: 1, inCgroup: 2, disk: 3}
	got, _ := aggregateSeries(deltas, fakeNames{}, 10, 0)
	var keys []string
	for _, s := range got {
		keys = append(keys, s.Signal+"{"+labelString(s.Labels)+"}")
	}
	want := []string{
		"disk_io_seconds{cgroup=/io/9,device=dev8388608,op=write,}",
		"tcp_rtt_seconds{cgroup=/cg/5,peer=10.0.0.1,}",
		"tcp_rtt_seconds{peer=10.0.0.1,}",
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("series %v, want %v", keys, want)
	}
	// A limit of one RTT series: both merge into one "other" series.
	got, dropped := aggregateSeries(map[bpf.TCPAggKey]uint64{rtt: 1, inCgroup: 2}, fakeNames{}, 1, 0)
	if len(got) != 1 || got[0].Label("peer") != overflowValue || got[0].Label("cgroup") != "" || got[0].Hist.Count != 3 || dropped[signalRTT] != 2 {
		t.Errorf("over the limit: %+v, dropped %v", got, dropped)
	}
}
