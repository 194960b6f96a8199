package analyzer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestPreferredMember(t *testing.T) {
	three := []string{"an-1", "an-2", "an-3"}
	two := []string{"an-1", "an-2"}
	count := map[string]int{}
	for p := range 64 {
		got := PreferredMember(three, p)
		count[got]++
		if PreferredMember([]string{"an-3", "an-1", "an-2"}, p) != got {
			t.Fatalf("partition %d: the order of members changed the choice", p)
		}
		// Without an-3, only an-3's partitions move.
		if got != "an-3" && PreferredMember(two, p) != got {
			t.Errorf("partition %d moved from %s when an-3 left", p, got)
		}
	}
	for _, m := range three {
		if count[m] < 10 {
			t.Errorf("%s prefers %d of 64 partitions: %v", m, count[m], count)
		}
	}
	if PreferredMember(nil, 1) != "" {
		t.Error("no members, yet a preferred one")
	}
}

func TestMembersLiveness(t *testing.T) {
	now := time.Unix(1000, 0)
	m := newMembers("an-1", 3*time.Second, func() time.Time { return now })
	if got := m.live(); !slices.Equal(got, []string{"an-1"}) {
		t.Fatalf("alone: %v", got)
	}
	m.note("an-2", 5, now)
	m.note("an-3", 7, now.Add(-time.Minute)) // a heartbeat left behind long ago
	if got := m.live(); !slices.Equal(got, []string{"an-1", "an-2"}) {
		t.Fatalf("live %v, want an-1 an-2", got)
	}
	now = now.Add(2 * time.Second)
	m.note("an-2", 6, now)
	now = now.Add(2 * time.Second)
	m.note("an-2", 6, now) // same revision: no news
	if got := m.live(); !slices.Equal(got, []string{"an-1", "an-2"}) {
		t.Fatalf("live %v", got)
	}
	now = now.Add(2 * time.Second)
	if got := m.live(); !slices.Equal(got, []string{"an-1"}) {
		t.Fatalf("an-2 silent for 4s: live %v", got)
	}
	m.note("an/4", 9, now)
	m.forget(memberKey("an/4"))
	if got := m.live(); !slices.Equal(got, []string{"an-1"}) {
		t.Fatalf("after forget: %v", got)
	}
	if k := memberKey("host.x 12"); k != "m.host_x_12" {
		t.Errorf("memberKey = %q", k)
	}
}

// TestAwaitClaimEndsAtTheClaim: a member that handed a partition over
// pulls again as soon as the preferred member's claim is stored, not
// after the full stay-away, so that it can take the partition over if
// the new owner dies right after the handover.
func TestAwaitClaimEndsAtTheClaim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tb := startBus(t, ctx, false)
	kv, err := tb.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: CheckpointBucket})
	if err != nil {
		t.Fatal(err)
	}
	p := &partitionRunner{f: &fleet{kv: kv}, n: 3}
	ours, err := kv.Put(ctx, p.key(), []byte(`{"owner":"b"}`))
	if err != nil {
		t.Fatal(err)
	}
	p.rev = ours
	// Another key's write (a heartbeat) is not a claim.
	if _, err := kv.Put(ctx, memberKeyPrefix+"a", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		p.awaitClaim(ctx, time.Hour)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("awaitClaim returned before any claim")
	case <-time.After(5 * claimPoll):
	}
	if _, err := kv.Update(ctx, p.key(), []byte(`{"owner":"a"}`), ours); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("awaitClaim still waiting after the claim was stored")
	}
}
