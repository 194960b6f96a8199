package collector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/wire"
)

// wire.Event kinds the collector publishes.
const (
	eventKindRetransmit = "tcp_retransmit"
	eventKindReset      = "tcp_reset"
	eventKindSlowQuery  = "db_slow_query"
)

// notableSignal returns the signal that counts events of kind, for the
// kinds that cut a batch short (Config.NotableInterval: retransmits and
// resets), and false for the others.
func notableSignal(kind string) (string, bool) {
	switch kind {
	case eventKindRetransmit:
		return signalRetransmits, true
	case eventKindReset:
		return signalResets, true
	}
	return "", false
}

// eventBudget lets at most max events through per interval and counts the
// rest. Safe for concurrent use.
type eventBudget struct {
	mu         sync.Mutex
	max, used  int
	suppressed int
}

// take reports whether one more event may be published this interval.
func (b *eventBudget) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used < b.max {
		b.used++
		return true
	}
	b.suppressed++
	return false
}

// reset starts a new interval and returns how many events the one that
// ended suppressed.
func (b *eventBudget) reset() (suppressed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	suppressed = b.suppressed
	b.used, b.suppressed = 0, 0
	return suppressed
}

// decodeSockEvent decodes one ring buffer record written by a TCP probe.
func decodeSockEvent(raw []byte) (bpf.TCPSockEvent, error) {
	var ev bpf.TCPSockEvent
	if len(raw) == 0 {
		return ev, errors.New("empty event record")
	}
	if k := raw[0]; k != bpf.EventTCPRetransmit && k != bpf.EventTCPResetSent && k != bpf.EventTCPResetReceived {
		return ev, fmt.Errorf("event record of unknown kind %d", raw[0])
	}
	if want := binary.Size(ev); len(raw) < want {
		return ev, fmt.Errorf("event record of %d bytes, want %d", len(raw), want)
	}
	// The object is compiled for little-endian BPF, which is the host's
	// byte order wherever it loads.
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ev); err != nil {
		return ev, fmt.Errorf("decode event record: %w", err)
	}
	return ev, nil
}

// tcpStateName names a kernel TCP state (include/net/tcp_states.h).
func tcpStateName(s uint8) string {
	switch s {
	case 1:
		return "ESTABLISHED"
	case 2:
		return "SYN_SENT"
	case 3:
		return "SYN_RECV"
	case 4:
		return "FIN_WAIT1"
	case 5:
		return "FIN_WAIT2"
	case 6:
		return "TIME_WAIT"
	case 7:
		return "CLOSE"
	case 8:
		return "CLOSE_WAIT"
	case 9:
		return "LAST_ACK"
	case 10:
		return "LISTEN"
	case 11:
		return "CLOSING"
	case 12:
		return "NEW_SYN_RECV"
	case 13:
		return "BOUND_INACTIVE"
	}
	return fmt.Sprintf("state(%d)", s)
}

// monoToWall converts a CLOCK_MONOTONIC timestamp (bpf_ktime_get_ns) into
// wall time, given a wall time and the monotonic clock read at one moment.
func monoToWall(tsNs uint64, wallNow time.Time, monoNow time.Duration) time.Time {
	return wallNow.Add(time.Duration(int64(tsNs) - int64(monoNow)))
}

// retransmitEvent turns a retransmit record into the event published on
// the events subject.
func retransmitEvent(ev bpf.TCPSockEvent, cluster, host string, at time.Time, hostNS uint32) *wire.Event {
	peer := endpoint(ev.Family, ev.Daddr, ev.Dport)
	local := endpoint(ev.Family, ev.Saddr, ev.Sport)
	state := tcpStateName(ev.State)
	return withNetNS(&wire.Event{
		Cluster: cluster,
		Host:    host,
		Time:    at,
		Kind:    eventKindRetransmit,
		Labels:  map[string]string{"peer": peer, "local": local, "state": state},
		Value:   1,
		Text:    fmt.Sprintf("TCP retransmit %s -> %s (%s)", local, peer, state),
	}, ev.Netns, hostNS)
}

// resetEvent turns a reset record into the event published on the events
// subject.
func resetEvent(ev bpf.TCPSockEvent, cluster, host string, at time.Time, hostNS uint32) *wire.Event {
	peer := endpoint(ev.Family, ev.Daddr, ev.Dport)
	local := endpoint(ev.Family, ev.Saddr, ev.Sport)
	dir, arrow := "sent", "->"
	if ev.Kind == bpf.EventTCPResetReceived {
		dir, arrow = "received", "<-"
	}
	return withNetNS(&wire.Event{
		Cluster: cluster,
		Host:    host,
		Time:    at,
		Kind:    eventKindReset,
		Labels:  map[string]string{"peer": peer, "local": local, "direction": dir},
		Value:   1,
		Text:    fmt.Sprintf("TCP reset %s %s %s", local, arrow, peer),
	}, ev.Netns, hostNS)
}

// withNetNS labels e with the network namespace ns unless it is the host's
// (or unknown), and returns e.
func withNetNS(e *wire.Event, ns, hostNS uint32) *wire.Event {
	if v, ok := netnsLabel(ns, hostNS); ok {
		e.Labels["netns"] = v
	}
	return e
}

// eventOf decodes one ring buffer record into the event to publish.
func eventOf(raw []byte, cluster, host string, now time.Time, mono time.Duration, names labelNamer, hostNS uint32) (*wire.Event, error) {
	if len(raw) > 0 && raw[0] == bpf.EventDBSlowQuery {
		ev, err := decodeQueryEvent(raw)
		if err != nil {
			return nil, err
		}
		return slowQueryEvent(ev, cluster, host, monoToWall(ev.TsNs, now, mono), names), nil
	}
	ev, err := decodeSockEvent(raw)
	if err != nil {
		return nil, err
	}
	at := monoToWall(ev.TsNs, now, mono)
	var e *wire.Event
	if ev.Kind == bpf.EventTCPRetransmit {
		e = retransmitEvent(ev, cluster, host, at, hostNS)
	} else {
		e = resetEvent(ev, cluster, host, at, hostNS)
	}
	if cg := names.cgroupPath(cgroupSockets, ev.Cgroup); cg != "" {
		e.Labels["cgroup"] = cg
	}
	return e, nil
}
