package eval

import (
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

const absenceRule = `groups:
  - name: hosts
    rules:
      - alert: HostSilent
        signal: mciv_collector_up
        stat: max
        detector: {type: absence, for: 10s}
`

func up() wire.Series {
	return wire.Series{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1}
}

func TestAbsenceOfAHost(t *testing.T) {
	e := New(mustRules(t, absenceRule), Options{})
	// The host's clock is an hour ahead of the analyzer's: it does not matter.
	skew := time.Hour
	arrive := func(seq int) time.Time { return t0.Add(time.Duration(seq+1)*time.Second + 300*time.Millisecond) }
	for seq := range 5 {
		b := batch("h", seq, up())
		b.Start = b.Start.Add(skew)
		mustEvalAt(t, e, b, arrive(seq))
	}
	// Silent: ticks on the analyzer's clock.
	if rep := e.Tick(arrive(4).Add(9 * time.Second)); len(rep.Alerts) != 0 {
		t.Fatalf("fired early: %+v", rep.Alerts)
	}
	rep := e.Tick(arrive(4).Add(10 * time.Second))
	if len(rep.Alerts) != 1 || rep.Alerts[0].State != wire.StateFiring || rep.Alerts[0].Labels["host"] != "h" ||
		!rep.Alerts[0].StartsAt.Equal(t0.Add(skew+15*time.Second)) || len(rep.Changes) != 1 {
		t.Fatalf("tick: %+v", rep)
	}
	if rep := e.Tick(arrive(4).Add(20 * time.Second)); len(rep.Alerts) != 0 {
		t.Fatalf("fired twice: %+v", rep.Alerts)
	}
	// The host comes back (a collector restart: Seq from 0): resolved.
	b := batch("h", 30, up())
	b.Seq, b.Start = 0, b.Start.Add(skew)
	rep = mustEvalAt(t, e, b, arrive(30))
	if len(rep.Alerts) != 1 || rep.Alerts[0].State != wire.StateResolved {
		t.Fatalf("back: %+v", rep.Alerts)
	}
}

// A host that goes on sending other signals but no longer the watched
// one: the absence is judged on its batches' time.
func TestAbsenceOfASignal(t *testing.T) {
	e := New(mustRules(t, absenceRule), Options{})
	for seq := range 30 {
		var series []wire.Series
		if seq < 5 {
			series = append(series, up())
		} else {
			series = append(series, retrans(1, ""))
		}
		rep := mustEvalAt(t, e, batch("h", seq, series...), t0)
		if seq == 14 && (len(rep.Alerts) != 1 || rep.Alerts[0].State != wire.StateFiring) {
			t.Fatalf("seq %d: %+v", seq, rep.Alerts)
		}
		if seq != 14 && len(rep.Alerts) != 0 {
			t.Fatalf("seq %d: %+v", seq, rep.Alerts)
		}
	}
}

func TestTickWithoutTickers(t *testing.T) {
	e := New(mustRules(t, tcpRule), Options{})
	mustEvalAt(t, e, batch("h", 1, retrans(10, "")), t0)
	if rep := e.Tick(t0.Add(time.Hour)); rep.Groups != 0 || len(rep.Alerts) != 0 {
		t.Fatalf("%+v", rep)
	}
}

func mustEvalAt(t *testing.T, e *Engine, b *wire.Batch, now time.Time) Report {
	t.Helper()
	rep, err := e.Eval(b, now)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
