package collector

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/lab/lossnet"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

func TestNetNSLabel(t *testing.T) {
	if _, ok := netnsLabel(0, 7); ok {
		t.Error("unknown namespace labelled")
	}
	if _, ok := netnsLabel(7, 7); ok {
		t.Error("host namespace labelled")
	}
	if v, ok := netnsLabel(4026532000, 7); !ok || v != "4026532000" {
		t.Errorf("netnsLabel = %q, %v", v, ok)
	}

	peer := [16]byte{127, 0, 0, 1}
	deltas := map[bpf.TCPRetransKey]uint64{
		{Peer: peer, Family: afInet, PeerPort: 80, LocalPort: 5000, Netns: 7}:  1,
		{Peer: peer, Family: afInet, PeerPort: 80, LocalPort: 5000, Netns: 99}: 2,
	}
	got := retransmitSeries(deltas, 7, fakeNames{})
	if len(got) != 2 {
		t.Fatalf("series %+v", got)
	}
	if labelString(got[0].Labels) != "local_port=5000,peer=127.0.0.1:80," || got[0].Value != 1 {
		t.Errorf("host series %+v", got[0])
	}
	if labelString(got[1].Labels) != "local_port=5000,netns=99,peer=127.0.0.1:80," || got[1].Value != 2 {
		t.Errorf("namespace series %+v", got[1])
	}

	agg := map[bpf.TCPAggKey]uint64{
		{Signal: bpf.AggTCPResetsSent, Family: afInet, Aux: 80, Aux2: 5000, Addr: peer, Netns: 99}: 3,
		{Signal: bpf.AggTCPConnectErrors, Family: afInet, Aux: 80, Addr: peer, Netns: 7}:           1,
		{Signal: bpf.AggDiskIOSeconds, Aux: 0x800000, Netns: 99, Bucket: 5}:                        1,
	}
	series, _ := aggregateSeries(agg, fakeNames{}, 10, 7)
	want := map[string]bool{
		"tcp_connect_errors_total{peer=127.0.0.1:80,}":                                 true,
		"tcp_resets_total{direction=sent,local_port=5000,netns=99,peer=127.0.0.1:80,}": true,
	}
	for _, s := range series {
		k := s.Signal + "{" + labelString(s.Labels) + "}"
		if s.Signal == signalDiskIO {
			if s.Label("netns") != "" {
				t.Errorf("disk series labelled netns: %s", k)
			}
			continue
		}
		if !want[k] {
			t.Errorf("unexpected series %s", k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("missing series %s", k)
	}

	ev := bpf.TCPSockEvent{Kind: bpf.EventTCPRetransmit, Family: afInet, Daddr: peer, Dport: 80, Saddr: peer, Sport: 5000, Netns: 99}
	if e := retransmitEvent(ev, "c", "h", time.Unix(1, 0), 7); e.Labels["netns"] != "99" {
		t.Errorf("retransmit event labels %v", e.Labels)
	}
	ev.Kind, ev.Netns = bpf.EventTCPResetReceived, 7
	if e := resetEvent(ev, "c", "h", time.Unix(1, 0), 7); e.Labels["netns"] != "" {
		t.Errorf("host reset event labels %v", e.Labels)
	}
}

func TestNewNetNS(t *testing.T) {
	pub := &decodingPublisher{t: t}
	if _, err := New(Config{Cluster: "c", Host: "h", NetNS: "/nonexistent/netns"}, pub, nil, nil); err == nil {
		t.Error("New accepted a missing namespace path")
	}
	f := t.TempDir() + "/file"
	writeFile(t, f, "x")
	if _, err := New(Config{Cluster: "c", Host: "h", NetNS: f}, pub, nil, nil); err == nil {
		t.Error("New accepted a regular file as a namespace")
	}
	c, err := New(Config{Cluster: "c", Host: "h", NetNS: selfNetNS}, pub, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := statIno(t, selfNetNS); c.hostNetNS != want {
		t.Errorf("hostNetNS = %d, want %d", c.hostNetNS, want)
	}
}

func statIno(t *testing.T, path string) uint32 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(fi.Sys().(*syscall.Stat_t).Ino)
}

// TestNetNSEndToEnd: retransmits in a lab namespace are labelled with the
// namespace's inode by a collector of the host; a collector scoped to the
// lab namespace sees them unlabelled (the lab is its host), and one scoped
// to another, empty namespace sees none.
// It runs once with the collector's choice of hooks and once with classic
// tracepoints only.
func TestNetNSEndToEnd(t *testing.T) {
	requireKernel(t)
	testenv.RequireCommand(t, "ip", "nft")
	testenv.ExclusiveKernel(t)
	t.Run("preferred", func(t *testing.T) { testNetNS(t, only("tcp")) })
	t.Run("tracepoint", func(t *testing.T) {
		testNetNS(t, func(objs []object) []object { return onlyWays(only("tcp")(objs), HookTypeTracepoint) })
	})
}

func testNetNS(t *testing.T, edit func([]object) []object) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	lab, err := lossnet.New(ctx, "mciv-netns-lab")
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	empty, err := lossnet.New(ctx, "mciv-netns-empty")
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	labPath := "/var/run/netns/" + lab.Name()
	labIno := statIno(t, labPath)
	if labIno == statIno(t, selfNetNS) {
		t.Fatal("lab namespace is the test's own")
	}

	all := runKernelCollector(t, Config{}, edit)
	scoped := runKernelCollector(t, Config{NetNS: labPath}, edit)
	other := runKernelCollector(t, Config{NetNS: "/var/run/netns/" + empty.Name()}, edit)
	for _, r := range []*running{all, scoped, other} {
		r.requireAttached(t, "tcp_retransmit_skb")
	}

	port, err := lab.StartWorkload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peer := "127.0.0.1:" + strconv.Itoa(port)
	if err := lab.SetLoss(ctx, 20); err != nil {
		t.Fatal(err)
	}
	wantNS := strconv.FormatUint(uint64(labIno), 10)
	isLab := func(s *wire.Series) bool {
		return s.Signal == signalRetransmits && s.Label("peer") == peer
	}

	var allSeries, allEvent, scopedSeries, scopedEvent bool
	otherSeen := 0
	// otherBatch checks a batch of the empty namespace's collector: it
	// must carry no retransmit.
	otherBatch := func(b *wire.Batch) {
		for _, s := range b.Series {
			if s.Signal == signalRetransmits {
				t.Fatalf("collector of the empty namespace: %s{%s}", s.Signal, labelString(s.Labels))
			}
		}
		otherSeen++
	}
	for !allSeries || !allEvent || !scopedSeries || !scopedEvent {
		select {
		case b := <-all.batches:
			for i := range b.Series {
				if s := &b.Series[i]; isLab(s) {
					if got := s.Label("netns"); got != wantNS {
						t.Fatalf("unscoped collector: %s netns=%q, want %s", labelString(s.Labels), got, wantNS)
					}
					allSeries = true
				}
			}
		case e := <-all.events:
			if e.Kind == eventKindRetransmit && (e.Labels["peer"] == peer || e.Labels["local"] == peer) {
				if e.Labels["netns"] != wantNS {
					t.Fatalf("unscoped collector: event %v, want netns=%s", e.Labels, wantNS)
				}
				allEvent = true
			}
		case b := <-scoped.batches:
			for i := range b.Series {
				if s := &b.Series[i]; isLab(s) {
					if got, ok := labelValue(s.Labels, "netns"); ok {
						t.Fatalf("scoped collector: %s has netns=%q", labelString(s.Labels), got)
					}
					scopedSeries = true
				}
			}
		case e := <-scoped.events:
			if e.Kind == eventKindRetransmit && (e.Labels["peer"] == peer || e.Labels["local"] == peer) {
				if v, ok := e.Labels["netns"]; ok {
					t.Fatalf("scoped collector: event labelled netns=%s", v)
				}
				scopedEvent = true
			}
		case b := <-other.batches:
			otherBatch(b)
		case e := <-other.events:
			t.Fatalf("collector of the empty namespace: event %s %v", e.Kind, e.Labels)
		case <-ctx.Done():
			t.Fatalf("unscoped series %v event %v, scoped series %v event %v", allSeries, allEvent, scopedSeries, scopedEvent)
		}
	}
	// The empty namespace's collector keeps publishing, without any TCP
	// retransmit, while the lab retransmits.
	deadline := time.After(2 * time.Second)
	for done := false; !done; {
		select {
		case b := <-other.batches:
			otherBatch(b)
		case e := <-other.events:
			t.Fatalf("collector of the empty namespace: event %s %v", e.Kind, e.Labels)
		case <-deadline:
			done = true
		}
	}
	if otherSeen == 0 {
		t.Fatal("collector of the empty namespace published no batch")
	}
	t.Logf("lab netns %s; empty-namespace collector published %d batches", wantNS, otherSeen)
}

func labelValue(ls []wire.Label, name string) (string, bool) {
	for _, l := range ls {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

// TestNetNSScopedTCPSignals: a collector scoped to its own namespace still
// sees every TCP signal of that namespace, the resets sent without a
// socket (whose namespace comes from the device) included, unlabelled.
func TestNetNSScopedTCPSignals(t *testing.T) {
	requireKernel(t)
	testenv.ExclusiveKernel(t)
	eachWay(t, "tcp", func(t *testing.T, _ string, edit func([]object) []object) {
		r := runKernelCollector(t, Config{NetNS: selfNetNS}, edit)
		r.requireAttached(t, "tcp_send_reset", "tcp_receive_reset", "inet_sock_set_state", "tcp_probe")
		testTCPSignals(t, r)
	})
}
