package replay

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

const tcpRule = `groups:
  - name: network
    rules:
      - alert: TCPRetransmitRateHigh
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
        for: 3s
        keep_firing_for: 5s
`

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func recordBatches(t *testing.T, values []float64) []byte {
	t.Helper()
	var buf bytes.Buffer
	rec := NewRecorder(&buf)
	for seq, v := range values {
		b := &wire.Batch{Cluster: "c", Host: "db-1", Seq: uint64(seq), Start: t0.Add(time.Duration(seq) * time.Second), Interval: time.Second,
			Series: []wire.Series{{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: v}}}
		msg := wire.EncodeBatch(b)
		if err := rec.Record(b.Start.Add(1100*time.Millisecond), msg); err != nil {
			t.Fatal(err)
		}
		if seq == 2 { // a duplicate delivery, and garbage
			if err := rec.Record(b.Start.Add(1200*time.Millisecond), msg); err != nil {
				t.Fatal(err)
			}
			if err := rec.Record(b.Start.Add(1300*time.Millisecond), []byte("junk")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}
	if rec.Count() != len(values)+2 {
		t.Fatalf("count %d", rec.Count())
	}
	return buf.Bytes()
}

func TestSamplesRoundTrip(t *testing.T) {
	file := recordBatches(t, []float64{10, 10, 10, 10, 10, 0, 0, 0, 0, 0, 0, 0})
	var out bytes.Buffer
	sum, err := Samples(bytes.NewReader(file), mustRules(t, tcpRule), &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Batches != 12 || sum.Alerts != 2 || sum.Ignored["duplicate"] != 1 || sum.Ignored["decode"] != 1 {
		t.Fatalf("summary %+v", sum)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("output:\n%s", out.String())
	}
	var fired struct {
		Transition string      `json:"transition"`
		Rule       string      `json:"rule"`
		TS         float64     `json:"ts"`
		Alert      *wire.Alert `json:"alert"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &fired); err != nil {
		t.Fatal(err)
	}
	if fired.Transition != "firing" || fired.Rule != "TCPRetransmitRateHigh" || fired.TS != float64(t0.Add(4*time.Second).Unix()) ||
		fired.Alert.Labels["host"] != "db-1" || !fired.Alert.At.Equal(t0.Add(4100*time.Millisecond)) {
		t.Fatalf("fired %s", lines[0])
	}
	if !strings.HasPrefix(lines[1], `{"transition":"resolved"`) {
		t.Fatalf("resolved %s", lines[1])
	}
	// Deterministic.
	var again bytes.Buffer
	if _, err := Samples(bytes.NewReader(file), mustRules(t, tcpRule), &again); err != nil || again.String() != out.String() {
		t.Fatal("not deterministic")
	}
}

func TestSamplesBadFiles(t *testing.T) {
	set := mustRules(t, tcpRule)
	good := recordBatches(t, []float64{1, 2, 3})
	for name, data := range map[string][]byte{
		"not a samples file": []byte("timestamp,value\n"),
		"truncated":          good[:len(good)-3],
		"huge length":        append([]byte(SamplesMagic), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0),
	} {
		if _, err := Samples(bytes.NewReader(data), set, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	var empty bytes.Buffer
	if err := NewRecorder(&empty).Flush(); err != nil {
		t.Fatal(err)
	}
	if sum, err := Samples(&empty, set, &bytes.Buffer{}); err != nil || sum.Batches != 0 {
		t.Fatalf("empty file: %+v %v", sum, err)
	}
}
