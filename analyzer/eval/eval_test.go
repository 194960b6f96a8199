package eval

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const tcpRule = `groups:
  - name: network
    rules:
      - alert: TCPRetransmitRateHigh
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 5}
        for: 3s
        keep_firing_for: 5s
        labels: {severity: warning}
        annotations:
          summary: "TCP retransmits on {{ .Labels.host }} at {{ printf \"%.1f\" .Value }}/s"
`

func mustRules(t *testing.T, src string) *rules.Set {
	t.Helper()
	groups, err := rules.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return &rules.Set{Groups: groups}
}

// batch is the seq'th one-second batch of host h in cluster c.
func batch(host string, seq int, series ...wire.Series) *wire.Batch {
	return &wire.Batch{Cluster: "c", Host: host, Seq: uint64(seq), Start: t0.Add(time.Duration(seq) * time.Second),
		Interval: time.Second, Series: series}
}

func retrans(v float64, peer string) wire.Series {
	s := wire.Series{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: v}
	if peer != "" {
		s.Labels = []wire.Label{{Name: "peer", Value: peer}}
	}
	return s
}

// feed evaluates batches and returns the transitions as "seq:state:host" strings.
func feed(t *testing.T, e *Engine, batches ...*wire.Batch) []string {
	t.Helper()
	var out []string
	for _, b := range batches {
		rep, err := e.Eval(b, b.Start.Add(b.Interval))
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range rep.Errors {
			t.Errorf("seq %d: %v", b.Seq, re)
		}
		for _, a := range rep.Alerts {
			out = append(out, fmt.Sprintf("%d:%s:%s", b.Seq, a.State, a.Labels["host"]))
		}
	}
	return out
}

func TestPendingFiringResolved(t *testing.T) {
	e := New(mustRules(t, tcpRule), Options{})
	var fired, resolved *wire.Alert
	for seq := 0; seq < 20; seq++ {
		var series []wire.Series
		switch {
		case seq < 6: // 10 retransmits per second, split over two peers
			series = []wire.Series{retrans(4, "10.0.0.2:5432"), retrans(6, "10.0.0.3:5432")}
		case seq == 6: // a dip below the threshold does not resolve (keep_firing_for)
			series = []wire.Series{retrans(1, "10.0.0.2:5432")}
		case seq == 7:
			series = []wire.Series{retrans(8, "10.0.0.2:5432")}
		default: // the keys stop coming: no retransmits
		}
		rep, err := e.Eval(batch("db-1", seq, series...), t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range rep.Alerts {
			switch a.State {
			case wire.StateFiring:
				if fired != nil {
					t.Fatalf("seq %d: fired twice", seq)
				}
				fired = a
				if seq != 3 {
					t.Errorf("fired at seq %d, want 3 (pending from the first batch, for 3s)", seq)
				}
			case wire.StateResolved:
				resolved = a
				// Last anomalous batch is seq 7; quiet from seq 8 (t=9s); keep firing 5s.
				if seq != 13 {
					t.Errorf("resolved at seq %d, want 13", seq)
				}
			}
		}
		if got := e.Active()[0]; seq >= 3 && seq < 13 && got.Firing != 1 {
			t.Errorf("seq %d: active %+v", seq, got)
		}
	}
	if fired == nil || resolved == nil {
		t.Fatalf("fired %v resolved %v", fired, resolved)
	}
	wantLabels := map[string]string{"alertname": "TCPRetransmitRateHigh", "cluster": "c", "host": "db-1", "severity": "warning"}
	if !reflect.DeepEqual(fired.Labels, wantLabels) {
		t.Errorf("labels %v", fired.Labels)
	}
	if fired.Fingerprint != Fingerprint("TCPRetransmitRateHigh", wantLabels) || resolved.Fingerprint != fired.Fingerprint {
		t.Errorf("fingerprints %s %s", fired.Fingerprint, resolved.Fingerprint)
	}
	if fired.Value != 10 || fired.Threshold != 5 || math.Abs(fired.Score-5.0/15) > 1e-9 ||
		fired.Rule != "TCPRetransmitRateHigh" || fired.Group != "network" || fired.Signal != "tcp_retransmits_total" || fired.Stat != "rate" {
		t.Errorf("fired %+v", fired)
	}
	if s := fired.Annotations["summary"]; s != "TCP retransmits on db-1 at 10.0/s" {
		t.Errorf("summary %q", s)
	}
	if !fired.StartsAt.Equal(t0.Add(4*time.Second)) || !fired.EndsAt.IsZero() || !fired.At.Equal(t0.Add(time.Hour)) {
		t.Errorf("fired times %v %v %v", fired.StartsAt, fired.EndsAt, fired.At)
	}
	if !resolved.StartsAt.Equal(fired.StartsAt) || !resolved.EndsAt.Equal(t0.Add(14*time.Second)) || resolved.Value != 0 {
		t.Errorf("resolved %+v", resolved)
	}
	if fired.MsgID() == resolved.MsgID() {
		t.Error("firing and resolved share a message id")
	}
	if got := e.Active()[0]; got != (Active{Rule: "TCPRetransmitRateHigh"}) {
		t.Errorf("active after resolve %+v", got)
	}
}

func TestShortBlipDoesNotFire(t *testing.T) {
	e := New(mustRules(t, tcpRule), Options{})
	got := feed(t, e,
		batch("db-1", 1, retrans(50, "")),
		batch("db-1", 2, retrans(50, "")),
		batch("db-1", 3, retrans(50, "")), // pending for 2s of the 3s needed
		batch("db-1", 4, retrans(1, "")),
		batch("db-1", 5), batch("db-1", 6), batch("db-1", 7),
	)
	if len(got) != 0 {
		t.Fatalf("a blip shorter than for fired: %v", got)
	}
	if a := e.Active()[0]; a.Pending != 0 || a.Firing != 0 {
		t.Fatalf("active %+v", a)
	}
}

func TestMissingKeyCountsAsZeroAndResolves(t *testing.T) {
	src := strings.Replace(tcpRule, "by: [cluster, host]", "by: [cluster, host, peer]", 1)
	src = strings.Replace(src, "keep_firing_for: 5s", "keep_firing_for: 0s", 1)
	e := New(mustRules(t, src), Options{})
	var got []string
	for seq := 0; seq < 10; seq++ {
		series := []wire.Series{retrans(9, "a")}
		if seq < 5 {
			series = append(series, retrans(9, "b")) // peer b's key stops coming after seq 4
		}
		rep, err := e.Eval(batch("db-1", seq, series...), t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range rep.Alerts {
			got = append(got, fmt.Sprintf("%d:%s:%s", seq, a.State, a.Labels["peer"]))
		}
	}
	want := []string{"3:firing:a", "3:firing:b", "5:resolved:b"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestHostsAreIndependent(t *testing.T) {
	e := New(mustRules(t, strings.Replace(tcpRule, "for: 3s", "for: 0s", 1)), Options{})
	got := feed(t, e,
		batch("db-1", 1, retrans(9, "")),
		batch("db-2", 1, retrans(1, "")),
		batch("db-2", 2, retrans(9, "")),
	)
	if want := []string{"1:firing:db-1", "2:firing:db-2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSequence(t *testing.T) {
	e := New(mustRules(t, tcpRule), Options{})
	ev := func(b *wire.Batch) Report {
		t.Helper()
		rep, err := e.Eval(b, t0)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if r := ev(batch("h", 10, retrans(1, ""))); r.Ignored != "" || r.Restart || r.Groups != 1 || r.Samples != 1 {
		t.Fatalf("first batch: %+v", r)
	}
	if r := ev(batch("h", 10, retrans(1, ""))); r.Ignored != IgnoredDuplicate {
		t.Fatalf("duplicate: %+v", r)
	}
	if r := ev(batch("h", 9, retrans(1, ""))); r.Ignored != IgnoredOutOfOrder {
		t.Fatalf("older: %+v", r)
	}
	// The collector restarted: Seq starts again, time goes on.
	restart := batch("h", 11, retrans(1, ""))
	restart.Seq = 0
	if r := ev(restart); r.Ignored != "" || !r.Restart || r.Groups != 1 {
		t.Fatalf("restart: %+v", r)
	}
	next := batch("h", 12, retrans(1, ""))
	next.Seq = 1
	if r := ev(next); r.Ignored != "" || r.Restart {
		t.Fatalf("after restart: %+v", r)
	}
	if _, err := e.Eval(&wire.Batch{Cluster: "c", Host: "h", Seq: 99}, t0); err == nil {
		t.Fatal("zero interval accepted")
	}
}

func TestStats(t *testing.T) {
	hist := func(count uint64, sum float64, labels ...wire.Label) wire.Series {
		return wire.Series{Signal: "sig", Kind: wire.KindHistogram, Labels: labels, Hist: &wire.Histogram{Count: count, Sum: sum}}
	}
	// observed is a histogram series of the values vs (in seconds).
	observed := func(vs ...float64) wire.Series {
		var r histo.Recorder
		for _, v := range vs {
			r.Observe(v)
		}
		return wire.Series{Signal: "sig", Kind: wire.KindHistogram, Hist: r.Snapshot()}
	}
	bucket := func(v float64) float64 { return histo.Value(histo.IndexOf(v)) }
	hundred := make([]float64, 100) // 0.001 .. 0.100
	for i := range hundred {
		hundred[i] = float64(i+1) / 1000
	}
	counter := func(v float64) wire.Series { return wire.Series{Signal: "sig", Kind: wire.KindCounter, Value: v} }
	gauge := func(v float64) wire.Series { return wire.Series{Signal: "sig", Kind: wire.KindGauge, Value: v} }
	for _, tc := range []struct {
		stat    rules.Stat
		series  []wire.Series
		want    float64 // the value the detector saw
		wantErr string
		hold    bool // no value: the detector is not fed
	}{
		{stat: rules.StatRate, series: []wire.Series{counter(3), counter(5)}, want: 4}, // 8 over 2s
		{stat: rules.StatCount, series: []wire.Series{counter(3), counter(5)}, want: 8},
		{stat: rules.StatRate, series: []wire.Series{hist(10, 1), hist(6, 2)}, want: 8},
		{stat: rules.StatCount, series: []wire.Series{hist(10, 1), hist(6, 2)}, want: 16},
		{stat: rules.StatMean, series: []wire.Series{hist(3, 0.3), hist(1, 0.5)}, want: 0.2},
		{stat: rules.StatMean, series: []wire.Series{hist(0, 0)}, hold: true},
		{stat: rules.StatMean, series: []wire.Series{gauge(1), gauge(4)}, want: 2.5},
		{stat: rules.StatMax, series: []wire.Series{gauge(-3), gauge(-1)}, want: -1},
		{stat: rules.StatMax, series: []wire.Series{observed(0.002, 0.5), observed(0.003)}, want: bucket(0.5)},
		{stat: rules.StatMax, series: []wire.Series{hist(0, 0)}, hold: true},
		{stat: rules.StatP50, series: []wire.Series{observed(hundred...)}, want: bucket(0.050)},
		{stat: rules.StatP90, series: []wire.Series{observed(hundred...)}, want: bucket(0.090)},
		{stat: rules.StatP99, series: []wire.Series{observed(hundred...)}, want: bucket(0.099)},
		// Two hosts' worth of series of one label set are merged before the quantile.
		{stat: rules.StatP99, series: []wire.Series{observed(hundred[:50]...), observed(hundred[50:]...)}, want: bucket(0.099)},
		{stat: rules.StatP50, series: []wire.Series{observed(0.001, 0.001, 0.001), observed(1, 1)}, want: bucket(0.001)},
		{stat: rules.StatP99, series: []wire.Series{hist(0, 0)}, hold: true},
		{stat: rules.StatP99, series: []wire.Series{gauge(1)}, wantErr: "stat p99 does not apply to sig, a gauge"},
		{stat: rules.StatMean, series: []wire.Series{counter(1)}, wantErr: "stat mean does not apply to sig, a counter"},
		{stat: rules.StatRate, series: []wire.Series{gauge(1)}, wantErr: "stat rate does not apply to sig, a gauge"},
		{stat: rules.StatCount, series: []wire.Series{gauge(1), counter(1)}, wantErr: "mixes series of different kinds"},
		{stat: rules.StatMean, series: []wire.Series{gauge(math.MaxFloat64), gauge(math.MaxFloat64)}, wantErr: "mean of sig is +Inf"},
		// Bad series are dropped: they do not poison their label set.
		{stat: rules.StatMean, series: []wire.Series{gauge(math.Inf(1))}, hold: true},
		{stat: rules.StatMean, series: []wire.Series{gauge(math.NaN()), gauge(math.Inf(-1)), gauge(3)}, want: 3},
		{stat: rules.StatCount, series: []wire.Series{counter(-4), counter(math.NaN()), counter(2)}, want: 2},
		{stat: rules.StatP99, series: []wire.Series{{Signal: "sig", Kind: wire.KindHistogram}, observed(0.5)}, want: bucket(0.5)},
	} {
		t.Run(fmt.Sprintf("%s %v", tc.stat, tc.series), func(t *testing.T) {
			src := fmt.Sprintf("groups:\n- name: g\n  rules:\n  - alert: A\n    signal: sig\n    stat: %s\n    detector: {type: threshold, op: '>', value: 1e9}\n", tc.stat)
			e := New(mustRules(t, src), Options{})
			b := batch("h", 1, tc.series...)
			b.Interval = 2 * time.Second
			rep, err := e.Eval(b, t0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" {
				if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error(), tc.wantErr) || rep.Errors[0].Rule != "A" {
					t.Fatalf("errors %v, want %q", rep.Errors, tc.wantErr)
				}
				return
			}
			if len(rep.Errors) != 0 {
				t.Fatal(rep.Errors)
			}
			var g *group
			for _, x := range e.hosts[hostKey{"c", "h"}].groups[0].all() {
				g = x
			}
			if tc.hold {
				if rep.Groups != 0 {
					t.Fatalf("detector fed without a value: %+v", rep)
				}
				return
			}
			if rep.Groups != 1 || math.Abs(g.value-tc.want) > 1e-12 {
				t.Fatalf("value %v, want %v (%+v)", g.value, tc.want, rep)
			}
		})
	}
}

func TestNonAdditiveStatHoldsWhenAbsent(t *testing.T) {
	src := `groups:
- name: g
  rules:
  - alert: SlowQueries
    signal: db_query_seconds
    stat: mean
    detector: {type: threshold, op: '>', value: 0.1}
`
	e := New(mustRules(t, src), Options{})
	slow := wire.Series{Signal: "db_query_seconds", Kind: wire.KindHistogram, Hist: &wire.Histogram{Count: 2, Sum: 1}}
	// No queries for a while is no evidence either way: the alert holds.
	got := feed(t, e, batch("h", 1, slow), batch("h", 2), batch("h", 3), batch("h", 4, wire.Series{
		Signal: "db_query_seconds", Kind: wire.KindHistogram, Hist: &wire.Histogram{Count: 2, Sum: 0.01}}))
	if want := []string{"1:firing:h", "4:resolved:h"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestIdleGroupsAreForgotten(t *testing.T) {
	src := strings.Replace(tcpRule, "by: [cluster, host]", "by: [cluster, host, peer]", 1)
	e := New(mustRules(t, src), Options{GroupIdleTTL: 10 * time.Second})
	groups := func() int { return e.hosts[hostKey{"c", "h"}].groups[0].len() }
	feed(t, e, batch("h", 0, retrans(1, "a"), retrans(1, "b")))
	if groups() != 2 {
		t.Fatalf("%d groups", groups())
	}
	for seq := 1; seq <= 11; seq++ {
		feed(t, e, batch("h", seq, retrans(1, "a")))
	}
	if groups() != 1 {
		t.Fatalf("%d groups after b was idle for 11s", groups())
	}
	// A firing group is never forgotten while it fires.
	e2 := New(mustRules(t, strings.Replace(src, "keep_firing_for: 5s", "keep_firing_for: 1h", 1)), Options{GroupIdleTTL: time.Second})
	feed(t, e2, batch("h", 0, retrans(50, "a")), batch("h", 1, retrans(50, "a")), batch("h", 2, retrans(50, "a")), batch("h", 3, retrans(50, "a")))
	for seq := 4; seq < 30; seq++ {
		feed(t, e2, batch("h", seq))
	}
	if n := e2.hosts[hostKey{"c", "h"}].groups[0].len(); n != 1 || e2.Active()[0].Firing != 1 {
		t.Fatalf("firing group forgotten: %d groups, %+v", n, e2.Active())
	}
}

func TestSameInputSameMessageIDs(t *testing.T) {
	run := func(clock time.Time) []string {
		e := New(mustRules(t, tcpRule), Options{})
		var ids []string
		for seq := 0; seq < 20; seq++ {
			var s []wire.Series
			if seq < 8 {
				s = append(s, retrans(20, ""))
			}
			rep, _ := e.Eval(batch("db-1", seq, s...), clock)
			for _, a := range rep.Alerts {
				ids = append(ids, a.MsgID())
			}
		}
		return ids
	}
	a, b := run(t0), run(t0.Add(3*time.Minute)) // two analyzers with different clocks
	if len(a) != 2 || !reflect.DeepEqual(a, b) {
		t.Fatalf("message ids differ: %v vs %v", a, b)
	}
}

func TestClockStepBackKeepsTimeMonotonic(t *testing.T) {
	e := New(mustRules(t, strings.Replace(tcpRule, "for: 3s", "for: 2s", 1)), Options{})
	b1 := batch("h", 10, retrans(50, ""))
	b2 := batch("h", 11, retrans(50, ""))
	b2.Start = b1.Start.Add(-time.Minute) // the host's clock stepped back
	b3 := batch("h", 12, retrans(50, ""))
	if got := feed(t, e, b1, b2, b3); !reflect.DeepEqual(got, []string{"12:firing:h"}) {
		t.Fatalf("got %v", got)
	}
}

func TestFingerprint(t *testing.T) {
	a := Fingerprint("R", map[string]string{"a": "1", "b": "2"})
	if a != Fingerprint("R", map[string]string{"b": "2", "a": "1"}) || len(a) != 16 {
		t.Fatal("not stable")
	}
	for _, other := range []string{
		Fingerprint("R2", map[string]string{"a": "1", "b": "2"}),
		Fingerprint("R", map[string]string{"a": "1", "b": "3"}),
		Fingerprint("R", map[string]string{"a": "1b", "": "2"}),
	} {
		if other == a {
			t.Fatal("collision")
		}
	}
}

func TestBadSeriesAreCounted(t *testing.T) {
	src := "groups:\n- name: g\n  rules:\n  - alert: A\n    signal: sig\n    stat: mean\n    detector: {type: threshold, op: '>', value: 1}\n"
	e := New(mustRules(t, src), Options{})
	g := func(v float64) wire.Series { return wire.Series{Signal: "sig", Kind: wire.KindGauge, Value: v} }
	rep, err := e.Eval(batch("h", 1, g(math.NaN()), g(math.NaN()), g(math.Inf(1)), g(0),
		wire.Series{Signal: "sig", Kind: wire.KindCounter, Value: -1},
		wire.Series{Signal: "sig", Kind: wire.KindHistogram},
		wire.Series{Signal: "unwatched", Kind: wire.KindGauge, Value: math.NaN()}), t0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{DroppedNaN: 2, DroppedInf: 1, DroppedNegative: 1, DroppedNoHist: 1}
	if !reflect.DeepEqual(rep.Dropped, want) || len(rep.Errors) != 0 {
		t.Fatalf("dropped %v errors %v", rep.Dropped, rep.Errors)
	}
}
