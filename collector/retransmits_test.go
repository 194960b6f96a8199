package collector

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/wire"
)

func TestDeltaTracker(t *testing.T) {
	type reading = map[string]uint64
	steps := []struct {
		name string
		cur  reading
		want reading
	}{
		{"first reading counts fully", reading{"a": 3, "b": 0}, reading{"a": 3}},
		{"increase", reading{"a": 5, "b": 2}, reading{"a": 2, "b": 2}},
		{"no change is omitted", reading{"a": 5, "b": 2}, reading{}},
		{"new key", reading{"a": 5, "b": 2, "c": 1}, reading{"c": 1}},
		{"evicted and recreated lower", reading{"a": 1, "b": 2, "c": 1}, reading{"a": 1}},
		{"evicted key vanishes", reading{"b": 4}, reading{"b": 2}},
		{"vanished key comes back", reading{"a": 7, "b": 4}, reading{"a": 7}},
		{"empty map", reading{}, reading{}},
	}
	var d deltaTracker[string]
	for _, s := range steps {
		got := d.update(s.cur)
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}

func addr16(s string) [16]byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		var b [16]byte
		v4 := a.As4()
		copy(b[:], v4[:])
		return b
	}
	return a.As16()
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		family uint16
		addr   string
		port   uint16
		want   string
	}{
		{afInet, "127.0.0.1", 5432, "127.0.0.1:5432"},
		{afInet, "10.1.2.3", 0, "10.1.2.3:0"},
		{afInet6, "::1", 5432, "[::1]:5432"},
		{afInet6, "2001:db8::7", 443, "[2001:db8::7]:443"},
		{afInet6, "::ffff:192.0.2.1", 80, "192.0.2.1:80"}, // IPv4-mapped: one name per peer
		{99, "::1", 1, "family(99):1"},
	}
	for _, tt := range tests {
		if got := endpoint(tt.family, addr16(tt.addr), tt.port); got != tt.want {
			t.Errorf("endpoint(%d, %s, %d) = %q, want %q", tt.family, tt.addr, tt.port, got, tt.want)
		}
	}
}

func TestRetransmitSeries(t *testing.T) {
	key := func(family uint16, addr string, peerPort, localPort uint16) bpf.TCPRetransKey {
		return bpf.TCPRetransKey{Family: family, Peer: addr16(addr), PeerPort: peerPort, LocalPort: localPort}
	}
	deltas := map[bpf.TCPRetransKey]uint64{
		key(afInet, "127.0.0.1", 5432, 40000):         2,
		key(afInet6, "::ffff:127.0.0.1", 5432, 40000): 3, // same peer via a v6 socket
		key(afInet6, "::1", 5432, 40001):              1,
		key(afInet, "10.0.0.9", 6432, 5432):           4,
	}
	got := retransmitSeries(deltas, 0, fakeNames{})
	want := []wire.Series{
		{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: 4, Labels: []wire.Label{{Name: "local_port", Value: "5432"}, {Name: "peer", Value: "10.0.0.9:6432"}}},
		{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: 5, Labels: []wire.Label{{Name: "local_port", Value: "40000"}, {Name: "peer", Value: "127.0.0.1:5432"}}},
		{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: 1, Labels: []wire.Label{{Name: "local_port", Value: "40001"}, {Name: "peer", Value: "[::1]:5432"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	if s := retransmitSeries(nil, 0, fakeNames{}); len(s) != 0 {
		t.Fatalf("no deltas: %v", s)
	}
}

func TestUpSeries(t *testing.T) {
	s := upSeries()
	if s.Signal != "mciv_collector_up" || s.Kind != wire.KindGauge || s.Value != 1 || len(s.Labels) != 0 {
		t.Fatalf("%+v", s)
	}
}
