package eval

import (
	"fmt"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

const perPeerRule = `groups:
  - name: network
    rules:
      - alert: PeerRetransmits
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host, peer]
        detector: {type: threshold, op: ">", value: 5}
        for: 0s
`

func peers(from, n int, v float64) []wire.Series {
	out := make([]wire.Series, n)
	for i := range out {
		out[i] = retrans(v, fmt.Sprintf("10.0.%d.%d", (from+i)/250, (from+i)%250))
	}
	return out
}

func TestSeriesCapRefusesNewSeriesAndKeepsKnownOnes(t *testing.T) {
	e := New(mustRules(t, perPeerRule), Options{MaxSeriesPerHost: 10, GroupIdleTTL: time.Minute})
	rep, err := e.Eval(batch("a", 1, peers(0, 10, 0)...), t0)
	if err != nil || rep.Refused != nil {
		t.Fatalf("under the cap: refused %v, err %v", rep.Refused, err)
	}
	// 10 known (now anomalous) + 5 new: the new are refused, the known fire.
	rep, _ = e.Eval(batch("a", 2, append(peers(0, 10, 100), peers(10, 5, 100)...)...), t0)
	if got := rep.Refused[RefusedMaxSeries]; got != 5 {
		t.Fatalf("refused %v, want 5 max_series", rep.Refused)
	}
	if len(rep.Alerts) != 10 {
		t.Fatalf("%d alerts, want the 10 known series firing", len(rep.Alerts))
	}
	// Another host is not affected.
	rep, _ = e.Eval(batch("b", 1, peers(0, 10, 100)...), t0)
	if rep.Refused != nil || len(rep.Alerts) != 10 {
		t.Fatalf("host b: refused %v, %d alerts", rep.Refused, len(rep.Alerts))
	}
	// Once the known series are silent for the idle TTL, new ones fit.
	rep, _ = e.Eval(batch("a", 200, peers(100, 10, 0)...), t0)
	if rep.Refused != nil {
		t.Fatalf("after the idle TTL: refused %v", rep.Refused)
	}
}

func TestGroupCapCountsEveryRule(t *testing.T) {
	e := New(mustRules(t, perPeerRule), Options{MaxSeriesPerHost: -1, MaxGroupsPerHost: 7})
	rep, _ := e.Eval(batch("a", 1, peers(0, 20, 0)...), t0)
	if got := rep.Refused[RefusedMaxGroups]; got != 13 {
		t.Fatalf("refused %v, want 13 max_groups", rep.Refused)
	}
	if n := e.hosts[hostKey{"c", "a"}].numGroups(); n != 7 {
		t.Fatalf("%d groups, want 7", n)
	}
}

func TestExpireForgetsSilentIdleHosts(t *testing.T) {
	e := New(mustRules(t, perPeerRule), Options{GroupIdleTTL: time.Minute})
	now := t0
	if _, err := e.Eval(batch("quiet", 1, peers(0, 3, 0)...), now); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Eval(batch("firing", 1, peers(0, 3, 100)...), now); err != nil {
		t.Fatal(err)
	}
	if got := e.Expire(now.Add(30 * time.Second)); len(got) != 0 {
		t.Fatalf("expired %v before the idle TTL", got)
	}
	got := e.Expire(now.Add(2 * time.Minute))
	if len(got) != 1 || got[0] != [2]string{"c", "quiet"} {
		t.Fatalf("expired %v, want only c/quiet (c/firing has firing alerts)", got)
	}
	if e.Hosts() != 1 {
		t.Fatalf("%d hosts remembered, want 1", e.Hosts())
	}
}
