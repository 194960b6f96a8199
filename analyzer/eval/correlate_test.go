package eval

import (
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
)

const correlatedRules = `groups:
  - name: g
    rules:
      - alert: QueryLatencyHigh
        signal: db_query_seconds
        stat: p99
        by: [cluster, host, instance]
        detector: {type: threshold, op: ">", value: 0.5}
        annotations:
          summary: "slow queries on {{ .Labels.host }}{{ with .Correlated }} ({{ . }}){{ end }}"
      - alert: RetransmitsHigh
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host, peer]
        detector: {type: threshold, op: ">", value: 5}
      - alert: DiskSlow
        signal: disk_io_seconds
        stat: p99
        by: [cluster, host, device]
        detector: {type: threshold, op: ">", value: 0.1}
        for: 5s
`

func latency(signal, label, value string, v float64) wire.Series {
	var r histo.Recorder
	r.Observe(v)
	return wire.Series{Signal: signal, Kind: wire.KindHistogram, Hist: r.Snapshot(), Labels: []wire.Label{{Name: label, Value: value}}}
}

func TestCorrelation(t *testing.T) {
	slowQuery := latency("db_query_seconds", "instance", "pg1", 2)
	fastQuery := latency("db_query_seconds", "instance", "pg1", 0.001)
	slowDisk := latency("disk_io_seconds", "device", "nvme0n1", 0.3)
	storm := retrans(50, "10.1.2.3:5432")

	annotation := func(rep Report, rule string) (string, bool) {
		for _, a := range rep.Alerts {
			if a.Rule == rule && a.State == wire.StateFiring {
				return a.Annotations[AnnotationCorrelated], true
			}
		}
		return "", false
	}
	t.Run("query latency with retransmits: network", func(t *testing.T) {
		e := New(mustRules(t, correlatedRules), Options{})
		// another host's retransmits do not count
		if _, err := e.Eval(batch("other", 1, storm), t0); err != nil {
			t.Fatal(err)
		}
		rep, err := e.Eval(batch("h", 1, slowQuery, storm), t0)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := annotation(rep, "QueryLatencyHigh"); got != "together with tcp retransmits to 10.1.2.3:5432: network suspected" {
			t.Errorf("query alert: %q", got)
		}
		for _, a := range rep.Alerts {
			if a.Rule == "QueryLatencyHigh" && a.Annotations["summary"] != "slow queries on h (together with tcp retransmits to 10.1.2.3:5432: network suspected)" {
				t.Errorf("summary %q", a.Annotations["summary"])
			}
		}
		if got, _ := annotation(rep, "RetransmitsHigh"); got != "together with query latency on pg1: network suspected" {
			t.Errorf("retransmit alert: %q", got)
		}
		if got, ok := annotation(mustEval(t, e, batch("other", 2, storm)), "RetransmitsHigh"); ok {
			t.Errorf("other host: %q", got)
		}
	})
	t.Run("query latency with disk latency pending: storage", func(t *testing.T) {
		e := New(mustRules(t, correlatedRules), Options{})
		mustEval(t, e, batch("h", 1, slowDisk, fastQuery)) // disk pending (for: 5s)
		rep := mustEval(t, e, batch("h", 2, slowDisk, slowQuery))
		if got, _ := annotation(rep, "QueryLatencyHigh"); got != "together with disk latency on nvme0n1: storage suspected" {
			t.Errorf("query alert: %q", got)
		}
		// Firing shows the same, with the current state.
		for _, a := range e.Firing(t0) {
			if a.Rule == "QueryLatencyHigh" && a.Annotations[AnnotationCorrelated] != "together with disk latency on nvme0n1: storage suspected" {
				t.Errorf("Firing: %v", a.Annotations)
			}
		}
	})
	t.Run("retransmits grouped by host name their largest peer", func(t *testing.T) {
		e := New(mustRules(t, strings.Replace(correlatedRules, "by: [cluster, host, peer]", "by: [cluster, host]", 1)), Options{})
		rep := mustEval(t, e, batch("h", 1, slowQuery, retrans(3, "10.9.9.9:22"), storm, retrans(4, "10.8.8.8:443")))
		if got, _ := annotation(rep, "QueryLatencyHigh"); got != "together with tcp retransmits to 10.1.2.3:5432: network suspected" {
			t.Errorf("query alert: %q", got)
		}
	})
	t.Run("alone", func(t *testing.T) {
		e := New(mustRules(t, correlatedRules), Options{})
		rep := mustEval(t, e, batch("h", 1, slowQuery))
		if got, ok := annotation(rep, "QueryLatencyHigh"); !ok || got != "" {
			t.Errorf("query alert alone: %q %v", got, ok)
		}
		if s := rep.Alerts[0].Annotations["summary"]; s != "slow queries on h" {
			t.Errorf("summary alone %q", s)
		}
	})
	t.Run("network and storage without query latency: no verdict", func(t *testing.T) {
		e := New(mustRules(t, correlatedRules), Options{})
		mustEval(t, e, batch("h", 1, slowDisk))
		rep := mustEval(t, e, batch("h", 2, slowDisk, storm))
		if got, _ := annotation(rep, "RetransmitsHigh"); got != "together with disk latency on nvme0n1" {
			t.Errorf("retransmit alert: %q", got)
		}
	})
}

func mustEval(t *testing.T, e *Engine, b *wire.Batch) Report {
	t.Helper()
	rep, err := e.Eval(b, t0)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestKindAnnotation(t *testing.T) {
	const autoRules = `groups:
  - name: g
    rules:
      - alert: RetransmitsAnomaly
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: auto}
`
	e := New(mustRules(t, autoRules), Options{})
	var kind string
	for i := range 400 {
		n := 10 + float64(i%3)
		if i >= 300 {
			n = 40 // a lasting level shift
		}
		rep := mustEval(t, e, batch("h", i+1, retrans(n, "10.1.2.3:5432")))
		for _, a := range rep.Alerts {
			if a.State == wire.StateFiring && kind == "" {
				kind = a.Annotations[AnnotationKind]
				if i < 300 {
					t.Fatalf("fired at %d before the shift", i)
				}
			}
		}
	}
	if kind != "level shift" && kind != "spike" {
		t.Fatalf("kind annotation %q, want level shift (or spike, its first sample)", kind)
	}
}
