package eval

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/rules"
)

// HostMark is what the engine remembers of one host's batches: the last
// evaluated batch's sequence number, start and (evaluation) end time. A
// new owner of the host's partition restores it so that it neither
// evaluates a batch twice nor miscounts a gap.
type HostMark struct {
	Cluster string    `json:"cluster"`
	Host    string    `json:"host"`
	Seq     uint64    `json:"seq"`
	Start   time.Time `json:"start"`
	Last    time.Time `json:"last"`
}

// Snapshot returns, for the hosts that keep selects, the state of every
// alert group that is not inactive and each host's mark, in a stable
// order. With Overlay it hands a set of hosts from one engine to another.
func (e *Engine) Snapshot(keep func(cluster, host string) bool) ([]GroupState, []HostMark) {
	var states []GroupState
	var marks []HostMark
	for _, hk := range e.sortedHosts() {
		if !keep(hk.cluster, hk.host) {
			continue
		}
		h := e.hosts[hk]
		marks = append(marks, HostMark{Cluster: hk.cluster, Host: hk.host, Seq: h.seq, Start: h.start, Last: h.last})
		for i, r := range e.rules {
			for _, g := range h.groups[i].all() {
				if g.life.State == lifecycle.Inactive && !h.last.Before(g.life.SuppressUntil) {
					continue // (a resolved group's quiet window moves along)
				}
				st := GroupState{
					Rule: r.Alert, Fingerprint: g.fingerprint, Cluster: hk.cluster, Host: hk.host, By: g.by,
					Life: g.life, Value: g.value, Seq: h.seq, Start: h.start, Last: h.last,
				}
				if math.IsNaN(st.Value) || math.IsInf(st.Value, 0) {
					st.Value = 0
				}
				states = append(states, st)
			}
		}
	}
	return states, marks
}

// Overlay makes the alert lifecycles of the hosts that keep selects
// those of states, and their marks those of marks: a group named in
// states takes its lifecycle and value and keeps its detector (the
// baseline a replay rebuilt), or starts with a fresh detector when it does
// not exist yet; every other group of those hosts becomes inactive. States
// of rules that no longer exist or whose labels changed are skipped. It
// returns how many groups it set.
func (e *Engine) Overlay(keep func(cluster, host string) bool, states []GroupState, marks []HostMark) int {
	for hk, h := range e.hosts {
		if !keep(hk.cluster, hk.host) {
			continue
		}
		for i := range e.rules {
			for _, g := range h.groups[i].all() {
				e.count(i, g.life.State, lifecycle.Inactive)
				g.life = lifecycle.Alert{}
			}
		}
	}
	for _, m := range marks {
		if !keep(m.Cluster, m.Host) {
			continue
		}
		h := e.hostFor(hostKey{m.Cluster, m.Host})
		h.seq, h.start = m.Seq, m.Start
		if m.Last.After(h.last) {
			h.last = m.Last
		}
	}
	n := 0
	for _, st := range states {
		if !keep(st.Cluster, st.Host) {
			continue
		}
		i := slices.IndexFunc(e.rules, func(r *rules.Rule) bool { return r.Alert == st.Rule })
		if i < 0 || len(st.By) != len(e.rules[i].By) || (st.Life.State == lifecycle.Inactive && st.Life.SuppressUntil.IsZero()) {
			continue
		}
		fresh := newGroup(e.rules[i], st.By)
		if fresh.fingerprint != st.Fingerprint {
			continue
		}
		h := e.hostFor(hostKey{st.Cluster, st.Host})
		if h.groups[i] == nil {
			h.groups[i] = newGroupSet()
		}
		g := h.groups[i].m[fresh.key]
		if g == nil {
			g = fresh
			g.lastSeen = st.Last
			h.groups[i].put(g)
		}
		e.count(i, g.life.State, st.Life.State)
		g.life, g.value = st.Life, st.Value
		n++
	}
	return n
}

// Forget drops the hosts that keep selects, with their alert groups and
// detectors, as when their partition moves to another analyzer. It
// returns how many hosts it dropped.
func (e *Engine) Forget(keep func(cluster, host string) bool) int {
	n := 0
	for hk, h := range e.hosts {
		if !keep(hk.cluster, hk.host) {
			continue
		}
		for i := range e.rules {
			for _, g := range h.groups[i].all() {
				e.count(i, g.life.State, lifecycle.Inactive)
			}
		}
		delete(e.hosts, hk)
		n++
	}
	return n
}

// hostFor returns the host of hk, creating it.
func (e *Engine) hostFor(hk hostKey) *host {
	h := e.hosts[hk]
	if h == nil {
		h = &host{groups: make([]*groupSet, len(e.rules))}
		e.hosts[hk] = h
	}
	return h
}

// sortedHosts returns the keys of e.hosts in a stable order.
func (e *Engine) sortedHosts() []hostKey {
	hks := make([]hostKey, 0, len(e.hosts))
	for hk := range e.hosts {
		hks = append(hks, hk)
	}
	slices.SortFunc(hks, func(a, b hostKey) int {
		return strings.Compare(a.cluster+"\xff"+a.host, b.cluster+"\xff"+b.host)
	})
	return hks
}
