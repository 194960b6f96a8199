package analyzer

import (
	"slices"
	"testing"
	"time"
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
