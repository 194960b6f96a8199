package collector

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/bpf"
)

func encodeQueryEvent(t *testing.T, ev bpf.PGQueryEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, ev); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSlowQueryEvent(t *testing.T) {
	ev := bpf.PGQueryEvent{Kind: bpf.EventDBSlowQuery, Protocol: protocolSimple, Instance: 7, Pid: 8, TsNs: 1e9, DurationNs: 250e6}
	for i, c := range []byte("SELECT * FROM users WHERE id = 42 AND name = 'bob'") {
		ev.Text[i] = int8(c)
	}
	raw := encodeQueryEvent(t, ev)
	var in instanceNames
	in.set(7, "postgres:5432")
	e, err := eventOf(raw, "prod", "db-1", time.Unix(100, 0), 2*time.Second, names{devices: &deviceNames{}, instances: &in}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != eventKindSlowQuery || e.Labels["instance"] != "postgres:5432" || e.Labels["protocol"] != "simple" || e.Value != 0.25 {
		t.Errorf("event %+v", e)
	}
	if !e.Time.Equal(time.Unix(99, 0)) {
		t.Errorf("time %v", e.Time)
	}
	if strings.Contains(e.Text, "42") || strings.Contains(e.Text, "bob") || e.Text != "SELECT * FROM users WHERE id = $1 AND name = $2" {
		t.Errorf("text %q", e.Text)
	}
	if _, err := decodeQueryEvent(raw[:10]); err == nil {
		t.Error("short record decoded")
	}
	ev.Text = [256]int8{}
	e, err = eventOf(encodeQueryEvent(t, ev), "prod", "db-1", time.Unix(100, 0), 2*time.Second, names{devices: &deviceNames{}, instances: &in}, 0)
	if err != nil || e.Text != "(query text not captured)" {
		t.Errorf("empty text: %+v %v", e, err)
	}
}
