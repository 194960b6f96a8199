package collector

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/wire"
)

// decodeQueryEvent decodes one slow query record written by pg.bpf.c.
func decodeQueryEvent(raw []byte) (bpf.PGQueryEvent, error) {
	var ev bpf.PGQueryEvent
	if len(raw) == 0 || raw[0] != bpf.EventDBSlowQuery {
		return ev, fmt.Errorf("not a slow query record")
	}
	if want := binary.Size(ev); len(raw) < want {
		return ev, fmt.Errorf("slow query record of %d bytes, want %d", len(raw), want)
	}
	if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ev); err != nil {
		return ev, fmt.Errorf("decode slow query record: %w", err)
	}
	return ev, nil
}

// cString returns the NUL-terminated text of a kernel char array.
func cString(a []int8) string {
	b := make([]byte, 0, len(a))
	for _, c := range a {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// slowQueryEvent turns a slow query record into the db_slow_query event,
// or nil for an instance that is not this host's. The query text is
// normalised here: no literal of it is published.
func slowQueryEvent(ev bpf.PGQueryEvent, cluster, host string, at time.Time, names labelNamer) *wire.Event {
	instance := names.instance(ev.Instance)
	if instance == "" {
		return nil
	}
	protocol := protocolName(uint32(ev.Protocol))
	text := normalizeQuery(cString(ev.Text[:]))
	if text == "" {
		text = "(query text not captured)"
	}
	d := time.Duration(ev.DurationNs)
	labels := map[string]string{"instance": instance, "protocol": protocol}
	if cg := names.cgroup(ev.Instance); cg != "" {
		labels["cgroup"] = cg
	}
	return &wire.Event{
		Cluster: cluster,
		Host:    host,
		Time:    at,
		Kind:    eventKindSlowQuery,
		Labels:  labels,
		Value:   d.Seconds(),
		Text:    text,
	}
}
