package fleetlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/fleetlab"
	"github.com/mciv/mciv/internal/wire"
)

func envN(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// quantile is the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// checkpoint reads partition p's checkpoint: owner and input sequence.
func (l *lab) checkpoint(ctx context.Context, p int) (owner string, seq uint64) {
	kv, err := l.js.KeyValue(ctx, analyzer.CheckpointBucket)
	if err != nil {
		return "", 0
	}
	e, err := kv.Get(ctx, fmt.Sprintf("p%d", p))
	if err != nil {
		return "", 0
	}
	var ck analyzer.Checkpoint
	_ = json.Unmarshal(e.Value(), &ck)
	return ck.Owner, ck.Seq
}

func (l *lab) analyzer(name string) *fleetlab.Part {
	for _, a := range l.analyzers {
		if a.Name == name {
			return a
		}
	}
	return nil
}

func (l *lab) rebalanced(ctx context.Context) bool {
	var members []string
	for _, a := range l.analyzers {
		members = append(members, a.Name)
	}
	for p := range labPartitions {
		if o, _ := l.checkpoint(ctx, p); o != analyzer.PreferredMember(members, p) {
			return false
		}
	}
	return true
}

// BenchmarkFleetTakeover measures, on the lab (three nats-server
// processes, two `mciv analyzer` processes, twelve hosts at 5 batches/s):
// takeover, from the SIGKILL of a partition's owner until another member
// has evaluated a batch stored after the kill (seen in its checkpoint,
// written every 500 ms, with a 2 s pin timeout); and flow, from the
// SIGKILL of the input stream's leader until the hosts' batches are
// stored again. MCIV_BENCH_KILLS (default 5) kills of each; median and
// worst reported.
//
//	go test -run '^$' -bench FleetTakeover -benchtime=1x ./internal/lab/fleetlab/
func BenchmarkFleetTakeover(b *testing.B) {
	kills := envN("MCIV_BENCH_KILLS", 5)
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		l := startLab(ctx, b, 2, 0, labRules)
		h := newHosts(b, l.js, 12)
		pctx, stopHosts := context.WithCancel(ctx)
		go func() { _ = h.run(pctx) }()
		h.waitSeq(b, 15)
		s, err := l.js.Stream(ctx, bus.InputStream)
		if err != nil {
			b.Fatal(err)
		}
		var takeovers, flows []time.Duration
		for k := range kills {
			waitFor(b, 2*time.Minute, "partitions with their preferred members", func() bool { return l.rebalanced(ctx) })
			p := k % labPartitions
			owner, _ := l.checkpoint(ctx, p)
			victim := l.analyzer(owner)
			si, err := s.Info(ctx)
			if victim == nil || err != nil {
				b.Fatalf("partition %d owner %q: %v", p, owner, err)
			}
			last := si.State.LastSeq
			victim.Kill()
			t0 := time.Now()
			waitFor(b, time.Minute, "takeover", func() bool {
				o, seq := l.checkpoint(ctx, p)
				return o != "" && o != victim.Name && seq > last
			})
			takeovers = append(takeovers, time.Since(t0))
			b.Logf("kill %d: partition %d evaluated again %.2fs after the SIGKILL of %s", k+1, p, time.Since(t0).Seconds(), victim.Name)
			if err := victim.Start(ctx); err != nil {
				b.Fatal(err)
			}
		}
		for k := range kills {
			var si *jetstream.StreamInfo
			waitFor(b, 2*time.Minute, "a healthy input stream", func() bool {
				si, err = s.Info(ctx)
				if err != nil || si.Cluster == nil || si.Cluster.Leader == "" || len(si.Cluster.Replicas) != 2 {
					return false
				}
				for _, r := range si.Cluster.Replicas {
					if !r.Current {
						return false
					}
				}
				return true
			})
			leader := l.cl.Index(si.Cluster.Leader)
			before := h.stats().Published
			l.cl.Kill(leader)
			t0 := time.Now()
			waitFor(b, 2*time.Minute, "batches stored again", func() bool { return h.stats().Published >= before+24 })
			flows = append(flows, time.Since(t0))
			b.Logf("kill %d: batches stored again %.2fs after the SIGKILL of %s", k+1, time.Since(t0).Seconds(), si.Cluster.Leader)
			if err := l.cl.Restart(ctx, leader); err != nil {
				b.Fatal(err)
			}
		}
		stopHosts()
		b.ReportMetric(quantile(takeovers, 0.5).Seconds(), "takeover-median-s")
		b.ReportMetric(slices.Max(takeovers).Seconds(), "takeover-worst-s")
		b.ReportMetric(quantile(flows, 0.5).Seconds(), "leaderkill-median-s")
		b.ReportMetric(slices.Max(flows).Seconds(), "leaderkill-worst-s")
		cancel()
	}
}

// drained reports whether every partition's consumer has delivered and
// had acknowledged everything stored.
func (l *lab) drained(ctx context.Context) bool {
	for p := range labPartitions {
		c, err := l.js.Consumer(ctx, bus.InputStream, analyzer.PartitionDurablePrefix+strconv.Itoa(p))
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		if err != nil || ci.NumPending > 0 || ci.NumAckPending > 0 {
			return false
		}
	}
	return true
}

// waitDrained waits up to d for the partitions to be drained.
func (l *lab) waitDrained(ctx context.Context, d time.Duration) bool {
	end := time.Now().Add(d)
	for !l.drained(ctx) {
		if time.Now().After(end) || ctx.Err() != nil {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// loadRules fire at once on one high batch, so that sample→alert latency
// is the pipeline's alone.
const loadRules = `groups:
  - name: network
    rules:
      - alert: TCPRetransmitRateHigh
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 5}
        labels: {severity: warning}
`

// loadStep publishes n hosts × 1 batch/s for d through the cluster; every
// 50th host turns high at a third of d. It reports whether the analyzers
// kept up (within 3 s of the last publish every partition's consumer
// had delivered everything stored, and had it acknowledged) and the sample→alert latencies (from the first high
// batch's publish to its alert on the bus).
func loadStep(ctx context.Context, tb testing.TB, l *lab, analyzers []*fleetlab.Part, n int, d time.Duration, round int) (bool, []time.Duration, float64) {
	sum := func() float64 { return metric(ctx, analyzers, "mciv_analyzer_batches_total") }
	var mu sync.Mutex
	hiAt := map[string]time.Time{}
	var lat []time.Duration
	sub, err := l.nc.Subscribe("mciv.alerts.>", func(m *nats.Msg) {
		a, err := wire.DecodeAlert(m.Data)
		if err != nil || a.State != wire.StateFiring {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if t, ok := hiAt[a.Labels["host"]]; ok {
			lat = append(lat, time.Since(t))
			delete(hiAt, a.Labels["host"])
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer sub.Unsubscribe()
	b0 := sum()
	secs := int(d / time.Second)
	published := 0
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for s := range secs {
		seq := round*1000 + s + 1
		for i := range n {
			host := fmt.Sprintf("r%dh%d", round, i)
			v := 0.0
			if i%50 == 0 && s >= secs/3 {
				v = 10
			}
			b := &wire.Batch{Cluster: "load", Host: host, Seq: uint64(seq), Start: time.Now().Add(-time.Second), Interval: time.Second,
				Series: []wire.Series{{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: v}}}
			if v > 0 && s == secs/3 {
				mu.Lock()
				hiAt[host] = time.Now()
				mu.Unlock()
			}
			if _, err := l.js.PublishAsync(wire.SamplesSubject("load", host), wire.EncodeBatch(b), jetstream.WithMsgID(host+"."+strconv.Itoa(seq))); err == nil {
				published++
			}
		}
		select {
		case <-l.js.PublishAsyncComplete():
		case <-time.After(5 * time.Second):
		}
		select {
		case <-ctx.Done():
			return false, nil, 0
		case <-tk.C:
		}
	}
	end := time.Now()
	var kept bool
	for time.Since(end) < 3*time.Second {
		if l.drained(ctx) {
			kept = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ratio := (sum() - b0) / float64(published)
	mu.Lock()
	defer mu.Unlock()
	return kept, slices.Clone(lat), ratio
}

// BenchmarkFleetLoad finds the most hosts (× 1 batch/s) the lab's two
// `mciv analyzer` processes keep up with through the three-node cluster,
// then the same with one analyzer (the other SIGKILLed), and reports
// each with the sample→alert latency p50/p99 at that load. Steps:
// MCIV_BENCH_HOSTS (default "250,500,1000,2000,4000"), each
// MCIV_BENCH_SECONDS long (default 15). Everything (publisher, NATS,
// analyzers) shares this machine: the figures are relative.
//
//	go test -run '^$' -bench FleetLoad -benchtime=1x ./internal/lab/fleetlab/
func BenchmarkFleetLoad(b *testing.B) {
	steps := []int{250, 500, 1000, 2000, 4000}
	if v := os.Getenv("MCIV_BENCH_HOSTS"); v != "" {
		steps = nil
		for f := range strings.SplitSeq(v, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				steps = append(steps, n)
			}
		}
	}
	d := time.Duration(envN("MCIV_BENCH_SECONDS", 15)) * time.Second
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		l := startLab(ctx, b, 2, 0, loadRules)
		round := 0
		for _, members := range []int{2, 1} {
			live := l.analyzers[:members]
			if members == 1 {
				l.analyzers[1].Kill()
				time.Sleep(5 * time.Second) // its partitions move to the survivor
			}
			best, p50, p99 := 0, time.Duration(0), time.Duration(0)
			for _, n := range steps {
				round++
				// A step that did not keep up leaves a backlog: the next
				// starts once the analyzers have drained it, so that
				// neither its count nor its alerts' latency include it.
				if !l.waitDrained(ctx, 3*time.Minute) {
					b.Logf("%d analyzer(s): the backlog of %d hosts did not drain in 3 minutes", members, steps[max(0, slices.Index(steps, n)-1)])
					break
				}
				kept, lat, ratio := loadStep(ctx, b, l, live, n, d, round)
				b.Logf("%d analyzer(s), %d hosts: kept up %v (evaluated/published %.0f %%, replays included), alert latency p50 %v p99 %v (%d alerts)",
					members, n, kept, 100*ratio, quantile(lat, 0.5).Round(time.Millisecond), quantile(lat, 0.99).Round(time.Millisecond), len(lat))
				if !kept {
					break
				}
				best, p50, p99 = n, quantile(lat, 0.5), quantile(lat, 0.99)
			}
			b.ReportMetric(float64(best), fmt.Sprintf("hosts-%dan", members))
			b.ReportMetric(p50.Seconds()*1000, fmt.Sprintf("alert-p50-ms-%dan", members))
			b.ReportMetric(p99.Seconds()*1000, fmt.Sprintf("alert-p99-ms-%dan", members))
		}
		cancel()
	}
}
