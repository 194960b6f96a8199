package eval

import (
	"fmt"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

const evidenceRule = `groups:
  - name: network
    rules:
      - alert: TCPRetransmitRateHigh
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
        evidence: {need: 1s, min: 500ms, max_weight: 4}
        keep_firing_for: 2s
`

// timeline feeds consecutive batches of host h: each step is a covered
// time and a retransmit count. It returns "t=<ms>:<state>" for every
// announcement, t being the end of the batch in milliseconds from t0.
func timeline(t *testing.T, e *Engine, steps []evStep) []string {
	t.Helper()
	var out []string
	start := t0
	for i, s := range steps {
		b := &wire.Batch{Cluster: "c", Host: "h", Seq: uint64(i + 1), Start: start, Interval: s.d,
			Series: []wire.Series{retrans(s.n, "")}}
		rep, err := e.Eval(b, start.Add(s.d))
		if err != nil {
			t.Fatal(err)
		}
		start = start.Add(s.d)
		for _, a := range rep.Alerts {
			out = append(out, fmt.Sprintf("t=%d:%s", start.Sub(t0).Milliseconds(), a.State))
		}
	}
	return out
}

type evStep struct {
	d time.Duration
	n float64
}

func repeat(n int, s ...evStep) []evStep {
	var out []evStep
	for range n {
		out = append(out, s...)
	}
	return out
}

func TestEvidenceFiresFastOnStrongFault(t *testing.T) {
	q := 250 * time.Millisecond
	// One quiet second, then 20 retransmits per 250 ms batch (80/s, far
	// past 5/s): the alert fires on the third strong batch, once the
	// fault has persisted 500 ms past the first.
	steps := append([]evStep{{time.Second, 0}}, repeat(4, evStep{q, 20})...)
	steps = append(steps, repeat(4, evStep{time.Second, 0})...)
	got := timeline(t, New(mustRules(t, evidenceRule), Options{}), steps)
	want := []string{"t=1750:firing", "t=5000:resolved"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestEvidenceWeakFaultNeedsLonger(t *testing.T) {
	// 6/s in one-second batches: strength 1.2, one second of need is met
	// by the first batch, but the fault must persist: it fires with the
	// second.
	got := timeline(t, New(mustRules(t, evidenceRule), Options{}), repeat(3, evStep{time.Second, 6}))
	if fmt.Sprint(got) != "[t=2000:firing]" {
		t.Fatalf("weak one-second fault: %v", got)
	}
	// 1.5 retransmits per 250 ms (6/s) fires only once a second of it has
	// been seen (strength 1.2: 250 ms count 300 ms; four batches).
	got = timeline(t, New(mustRules(t, evidenceRule), Options{}), repeat(6, evStep{250 * time.Millisecond, 1.5}))
	if fmt.Sprint(got) != "[t=1000:firing]" {
		t.Fatalf("weak fault in short batches: %v", got)
	}
}

func TestEvidenceQuietThroughBlips(t *testing.T) {
	q := 250 * time.Millisecond
	// A strong blip in one early batch every few seconds (as a short
	// burst of loss gives) never fires: one batch is less than min.
	blip := []evStep{{q, 10}, {time.Second, 0}, {time.Second, 0}, {time.Second, 0}}
	if got := timeline(t, New(mustRules(t, evidenceRule), Options{}), repeat(10, blip...)); len(got) != 0 {
		t.Fatalf("blips fired: %v", got)
	}
	// One long batch holding a burst, however strong, is one sighting.
	burst := []evStep{{time.Second, 0}, {900 * time.Millisecond, 100}, {time.Second, 0}, {time.Second, 0}}
	if got := timeline(t, New(mustRules(t, evidenceRule), Options{}), repeat(5, burst...)); len(got) != 0 {
		t.Fatalf("bursts in one batch fired: %v", got)
	}
	// The same with `for: 0` would fire on every blip: the test can fail.
	forZero := `groups:
  - name: network
    rules:
      - alert: TCPRetransmitRateHigh
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
`
	if got := timeline(t, New(mustRules(t, forZero), Options{}), repeat(3, blip...)); len(got) != 6 {
		t.Fatalf("for: 0 on blips: %v", got)
	}
}

func TestEvidenceSurvivesOneQuietWindow(t *testing.T) {
	q := 250 * time.Millisecond
	// TCP's back-off leaves a quiet batch between two bursts of a lasting
	// fault: the run goes on, the gap counts as persisting, and it fires
	// with the second burst, 500 ms past the first.
	steps := []evStep{{time.Second, 0}, {q, 3}, {q, 0}, {q, 3}, {q, 3}}
	got := timeline(t, New(mustRules(t, evidenceRule), Options{}), steps)
	if fmt.Sprint(got) != "[t=1750:firing]" {
		t.Fatalf("got %v", got)
	}
	// Two quiet batches end it: the fourth batch starts a new run.
	steps = []evStep{{time.Second, 0}, {q, 3}, {q, 0}, {q, 0}, {q, 3}, {time.Second, 0}}
	if got := timeline(t, New(mustRules(t, evidenceRule), Options{}), steps); len(got) != 0 {
		t.Fatalf("broken run fired: %v", got)
	}
}
