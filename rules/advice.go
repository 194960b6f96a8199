package rules

import (
	"fmt"
	"slices"

	"github.com/mciv/mciv/detect"
)

// EarlyBatchedSignals returns the signals whose events make a collector
// cut its batch short (collector.Config.NotableInterval, 250ms by default,
// after a TCP retransmit or reset), so that while they happen a host's
// batches cover a quarter of a second rather than its interval.
func EarlyBatchedSignals() []string {
	return []string{"tcp_retransmits_total", "tcp_resets_total"}
}

// Advice is a rule that loads and runs but probably does not do what its
// author meant; `mciv rules check` prints it without failing.
type Advice struct {
	Pos  Pos
	Rule string
	Msg  string
}

// Error formats the advice as file:line:col: rule NAME: message.
func (a Advice) Error() string {
	return fmt.Sprintf("%s: rule %s: %s", a.Pos, a.Rule, a.Msg)
}

// Advice returns what the set's rules probably get wrong, in rule order.
//
// A static threshold on the rate or count of an early-batched signal,
// held with `for`: while a host retransmits, its batches are 250ms long
// and a lasting fault shows 0 or 1 events in many of them (a rate below
// the threshold), each of which restarts `for`. Such a rule pages late or
// not at all during the very fault it watches for (a 9/s fault against a
// 5/s threshold with `for: 2s` took 9 to 50 s in the failover lab, once
// more than a minute); `evidence`, which one quiet batch does not break,
// pages in about a second.
func (s *Set) Advice() []Advice {
	var out []Advice
	early := EarlyBatchedSignals()
	for _, r := range s.Rules() {
		if _, static := r.Detector.(detect.ThresholdSpec); !static || r.Evidence != nil || r.For <= 0 {
			continue
		}
		if !r.Stat.Additive() || !slices.Contains(early, r.Signal) {
			continue
		}
		out = append(out, Advice{Pos: r.Pos, Rule: r.Alert, Msg: fmt.Sprintf(
			"for: %s on the %s of %s restarts at every batch below the threshold, and while a host "+
				"retransmits or resets its collector cuts batches short (notable_interval, 250ms by default): "+
				"a lasting fault pages late or never; "+
				"use evidence: {need: 1s, min: 750ms} instead of for (see rules/default/network.yaml)",
			r.For, r.Stat, r.Signal)})
	}
	return out
}
