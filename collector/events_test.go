package collector

import (
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mciv/mciv/bpf"
)

func TestEventBudget(t *testing.T) {
	b := eventBudget{max: 3}
	var got []bool
	for range 5 {
		got = append(got, b.take())
	}
	want := []bool{true, true, true, false, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("take %d: %v, want %v", i, got[i], want[i])
		}
	}
	if n := b.reset(); n != 2 {
		t.Fatalf("suppressed %d, want 2", n)
	}
	if !b.take() {
		t.Fatal("no budget after reset")
	}
	if n := b.reset(); n != 0 {
		t.Fatalf("suppressed %d after a quiet interval", n)
	}
}

func TestEventBudgetConcurrent(t *testing.T) {
	b := eventBudget{max: 100}
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if b.take() {
					mu.Lock()
					taken++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if taken != 100 || b.reset() != 300 {
		t.Fatalf("taken %d of 400 with a budget of 100", taken)
	}
}

func encodeEvent(t *testing.T, ev bpf.TCPSockEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, &ev); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sampleEvent() bpf.TCPSockEvent {
	return bpf.TCPSockEvent{
		Kind:   bpf.EventTCPRetransmit,
		State:  1,
		Family: afInet,
		Sport:  40000,
		Dport:  5432,
		TsNs:   123456789,
		Saddr:  addr16("127.0.0.1"),
		Daddr:  addr16("127.0.0.2"),
	}
}

func TestDecodeSockEvent(t *testing.T) {
	want := sampleEvent()
	raw := encodeEvent(t, want)
	got, err := decodeSockEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// The ring buffer pads records to 8 bytes: trailing bytes are fine.
	if _, err := decodeSockEvent(append(raw, 0, 0, 0, 0)); err != nil {
		t.Fatalf("padded record: %v", err)
	}
	for name, bad := range map[string][]byte{
		"empty":        nil,
		"short":        raw[:10],
		"unknown kind": append([]byte{200}, raw[1:]...),
	} {
		if _, err := decodeSockEvent(bad); err == nil {
			t.Errorf("%s record: no error", name)
		}
	}
}

func TestRetransmitEvent(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := retransmitEvent(sampleEvent(), "prod", "db-1", at, 0)
	if e.Kind != "tcp_retransmit" || e.Cluster != "prod" || e.Host != "db-1" || !e.Time.Equal(at) {
		t.Fatalf("%+v", e)
	}
	want := map[string]string{"peer": "127.0.0.2:5432", "local": "127.0.0.1:40000", "state": "ESTABLISHED"}
	for k, v := range want {
		if e.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, e.Labels[k], v)
		}
	}
	if !strings.Contains(e.Text, "127.0.0.1:40000 -> 127.0.0.2:5432") {
		t.Errorf("text %q", e.Text)
	}
}

func TestTCPStateName(t *testing.T) {
	for s, want := range map[uint8]string{1: "ESTABLISHED", 4: "FIN_WAIT1", 12: "NEW_SYN_RECV", 0: "state(0)", 99: "state(99)"} {
		if got := tcpStateName(s); got != want {
			t.Errorf("state %d: %q, want %q", s, got, want)
		}
	}
}

func TestMonoToWall(t *testing.T) {
	wall := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	mono := 100 * time.Second
	if got := monoToWall(uint64(98*time.Second), wall, mono); !got.Equal(wall.Add(-2 * time.Second)) {
		t.Fatalf("got %v", got)
	}
	// The monotonic clock as the collector reads it is the one BPF uses:
	// a timestamp taken now converts to about now.
	now := time.Now()
	got := monoToWall(uint64(monotonicNow()), now, monotonicNow())
	if d := now.Sub(got); d < -time.Second || d > time.Second {
		t.Fatalf("now converts to %v (off by %v)", got, d)
	}
}

func TestResetEvents(t *testing.T) {
	for kind, want := range map[uint8]string{bpf.EventTCPResetSent: "sent", bpf.EventTCPResetReceived: "received"} {
		ev := sampleEvent()
		ev.Kind = kind
		e, err := eventOf(encodeEvent(t, ev), "prod", "db-1", time.Unix(100, 0), 0, names{devices: &deviceNames{}, instances: &instanceNames{}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != eventKindReset || e.Labels["direction"] != want || e.Labels["peer"] != "127.0.0.2:5432" || e.Labels["local"] != "127.0.0.1:40000" {
			t.Errorf("%s: %+v", want, e)
		}
	}
	// A socket in a cgroup: its events carry the cgroup's name.
	ev := sampleEvent()
	ev.Cgroup = 5
	if e, err := eventOf(encodeEvent(t, ev), "prod", "db-1", time.Unix(100, 0), 0, fakeNames{}, 0); err != nil || e.Labels["cgroup"] != "/cg/5" {
		t.Errorf("event of a socket in cgroup 5: %+v %v", e, err)
	}
	ev = sampleEvent()
	ev.Kind = 99
	if _, err := eventOf(encodeEvent(t, ev), "prod", "db-1", time.Unix(100, 0), 0, names{}, 0); err == nil {
		t.Error("unknown kind decoded")
	}
}
