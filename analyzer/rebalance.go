package analyzer

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// memberKeyPrefix starts the keys of CheckpointBucket that hold the
// members' heartbeats ("m.<member>").
const memberKeyPrefix = "m."

// PreferredMember is the member a partition belongs to when every one of
// members is up: rendezvous (highest random weight) hashing, so that a
// member that leaves moves only its own partitions and one that comes
// back gets the same ones again.
func PreferredMember(members []string, p int) string {
	var best string
	var bestW uint64
	for _, m := range members {
		h := fnv.New64a()
		_, _ = h.Write([]byte(m + "/" + strconv.Itoa(p)))
		if w := mix64(h.Sum64()); best == "" || w > bestW || (w == bestW && m < best) {
			best, bestW = m, w
		}
	}
	return best
}

// mix64 is splitmix64's finalizer: FNV alone weighs the member's name
// too little against the partition number.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// memberKey is the heartbeat key of member: KV keys allow letters,
// digits and -_=./ only.
func memberKey(member string) string {
	return memberKeyPrefix + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '=':
			return r
		}
		return '_'
	}, member)
}

// members is one member's view of who is up: each member puts its
// heartbeat key every checkpoint interval, and a member is up while its
// key's revision keeps changing (judged on this member's own clock, so
// the members' clocks need not agree).
type members struct {
	self string
	ttl  time.Duration
	now  func() time.Time

	mu   sync.Mutex
	seen map[string]memberSeen
}

type memberSeen struct {
	rev uint64
	at  time.Time
}

func newMembers(self string, ttl time.Duration, now func() time.Time) *members {
	return &members{self: self, ttl: ttl, now: now, seen: map[string]memberSeen{}}
}

// forget drops the member whose heartbeat key is key (it left).
func (m *members) forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.seen {
		if memberKey(name) == key {
			delete(m.seen, name)
		}
	}
}

// note records a heartbeat of member at revision rev, stored at created:
// a heartbeat seen for the first time counts from then (a member killed
// long ago left its last one behind).
func (m *members) note(member string, rev uint64, created time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.seen[member]
	switch {
	case !ok:
		at := m.now()
		if !created.IsZero() && created.Before(at) {
			at = created
		}
		m.seen[member] = memberSeen{rev: rev, at: at}
	case s.rev != rev:
		m.seen[member] = memberSeen{rev: rev, at: m.now()}
	}
}

// live returns the members up now, this one always among them, sorted.
func (m *members) live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := []string{m.self}
	for name, s := range m.seen {
		if name != m.self && now.Sub(s.at) <= m.ttl {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// preferred is the live member partition p belongs to.
func (m *members) preferred(p int) string { return PreferredMember(m.live(), p) }

// heartbeat is the value of a member's key.
type heartbeat struct {
	Member string    `json:"member"`
	At     time.Time `json:"at"`
}

// runMembers puts this member's heartbeat every interval and watches the
// others' until ctx ends; then it deletes its key, so that the others
// stop counting on it at once.
func (f *fleet) runMembers(ctx context.Context) {
	a := f.a
	fc := a.cfg.Fleet
	key := memberKey(fc.Member)
	put := func() {
		data, _ := json.Marshal(heartbeat{Member: fc.Member, At: time.Now()})
		pctx, cancel := context.WithTimeout(ctx, fc.CheckpointInterval)
		defer cancel()
		if _, err := f.kv.Put(pctx, key, data); err != nil && ctx.Err() == nil {
			a.log.Debug("member heartbeat failed", "err", err)
		}
	}
	put()
	var wg sync.WaitGroup
	wg.Go(func() { f.watchMembers(ctx) })
	t := time.NewTicker(fc.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = f.kv.Delete(dctx, key)
			cancel()
			return
		case <-t.C:
			put()
		}
	}
}

// watchMembers feeds the other members' heartbeats to f.members,
// watching again after an interruption.
func (f *fleet) watchMembers(ctx context.Context) {
	for ctx.Err() == nil {
		// ctx also bounds the watch's life: cancel it if the watch is
		// not set up within apiTimeout, as its request may be lost.
		wctx, cancel := context.WithCancel(ctx)
		t := time.AfterFunc(apiTimeout, cancel)
		w, err := f.kv.Watch(wctx, memberKeyPrefix+"*")
		if !t.Stop() && err == nil {
			err = context.DeadlineExceeded // (cancelled just as it returned)
			_ = w.Stop()
		}
		if err != nil {
			cancel()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e == nil { // the end of the initial values
				f.seenOnce.Do(func() { close(f.membersSeen) })
				continue
			}
			var hb heartbeat
			if e.Operation() != jetstream.KeyValuePut || json.Unmarshal(e.Value(), &hb) != nil || hb.Member == "" {
				f.members.forget(e.Key())
				continue
			}
			f.members.note(hb.Member, e.Revision(), e.Created())
		}
		_ = w.Stop()
		cancel()
	}
}

// maybeRelease hands the partition to its preferred member when that
// member is up and this one has owned it for a while: after a
// checkpoint of everything evaluated it stops evaluating the partition, asks the
// server to unpin it and stays away until the preferred member has
// claimed it (or twice the pin timeout, if it never does), so that the
// preferred member's pulls get it. It pulls again as soon as the claim
// is stored: its pulls then wait behind the new owner's pin, and take
// the partition over if that owner dies right after the handover.
func (p *partitionRunner) maybeRelease(ctx context.Context) {
	f := p.f
	fc := f.a.cfg.Fleet
	if fc.NoRebalance || !p.owned || f.members == nil || time.Since(p.since) < 2*fc.PinnedTTL {
		return
	}
	pref := f.members.preferred(p.n)
	if pref == "" || pref == fc.Member {
		return
	}
	// Everything fetched is evaluated and acknowledged: a checkpoint now
	// holds all of it, and the next owner starts right after, from a
	// detector snapshot taken with it.
	p.snapSaved = time.Time{}
	if !p.checkpoint(ctx) {
		return
	}
	p.lose("handing over to its preferred member " + pref)
	f.a.fm.handovers.Inc()
	uctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := f.stream.UnpinConsumer(uctx, p.consumer, PriorityGroup)
	cancel()
	if err != nil {
		f.a.log.Debug("unpin failed; the pin times out instead", "partition", p.n, "err", err)
	}
	p.awaitClaim(ctx, 2*fc.PinnedTTL)
}

// awaitClaim waits until another member has stored a checkpoint of the
// partition after ours (its claim), ctx ends or limit passes.
func (p *partitionRunner) awaitClaim(ctx context.Context, limit time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(claimPoll)
	defer t.Stop()
	for {
		select {
		case <-wctx.Done():
			return
		case <-t.C:
		}
		gctx, gcancel := context.WithTimeout(wctx, claimPoll)
		e, err := p.f.kv.Get(gctx, p.key())
		gcancel()
		if err == nil && e.Revision() > p.rev {
			return
		}
	}
}

// claimPoll is how often a member that handed a partition over looks
// for the preferred member's claim.
const claimPoll = 100 * time.Millisecond
