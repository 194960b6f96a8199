package bus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestInputStreamPartitionsHosts checks that the server maps each host's
// samples and events to one partition, the same for both, and that
// EnsureInputStream may run twice.
func TestInputStreamPartitionsHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := startJetStream(ctx, t)
	for range 2 {
		if _, err := EnsureInputStream(ctx, js, InputOptions{Partitions: 4}); err != nil {
			t.Fatal(err)
		}
	}
	if got := Replicas(0, js.Conn()); got != 1 {
		t.Errorf("Replicas on a single server = %d, want 1", got)
	}
	const hosts = 40
	for i := range hosts {
		for _, kind := range []string{"samples", "events"} {
			if _, err := js.Publish(ctx, fmt.Sprintf("mciv.%s.c.h%d", kind, i), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, _ := js.Stream(ctx, InputStream)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(2*hosts, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]int{}
	used := map[int]bool{}
	n := 0
	for m := range b.Messages() {
		n++
		p, orig, err := SplitPartition(m.Subject())
		if err != nil {
			t.Fatal(err)
		}
		if p >= 4 {
			t.Errorf("partition %d of 4", p)
		}
		used[p] = true
		host := orig[len("mciv.samples."):]
		if len(orig) > len("mciv.events.") && orig[:len("mciv.events.")] == "mciv.events." {
			host = orig[len("mciv.events."):]
		}
		if cl, h, ok := strings.Cut(host, "."); !ok || PartitionOf(cl, h, 4) != p {
			t.Errorf("PartitionOf(%q) = %d, the server put it in %d", host, PartitionOf(cl, h, 4), p)
		}
		if q, ok := where[host]; ok && q != p {
			t.Errorf("host %s in partitions %d and %d", host, q, p)
		}
		where[host] = p
	}
	if n != 2*hosts {
		t.Fatalf("read %d messages, want %d", n, 2*hosts)
	}
	if len(used) < 3 {
		t.Errorf("40 hosts used only %d of 4 partitions", len(used))
	}
}

func TestSplitPartition(t *testing.T) {
	p, orig, err := SplitPartition("7.mciv.samples.c.h")
	if err != nil || p != 7 || orig != "mciv.samples.c.h" {
		t.Fatalf("got %d %q %v", p, orig, err)
	}
	for _, bad := range []string{"mciv", "x.mciv.samples.c.h", "-1.a"} {
		if _, _, err := SplitPartition(bad); err == nil {
			t.Errorf("SplitPartition(%q) accepted", bad)
		}
	}
	if PartitionFilter(3) != "3.>" {
		t.Error(PartitionFilter(3))
	}
}
