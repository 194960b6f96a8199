package fleetlab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/lab/fleetlab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/slack/slacktest"
)

// labRules are the lab's rules: a retransmit threshold and the absence
// rule that must never fire while every host publishes.
const labRules = `groups:
  - name: network
    rules:
      - alert: TCPRetransmitRateHigh
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: threshold, op: ">", value: 5}
        for: 1s
        keep_firing_for: 2s
        labels: {severity: warning}
        annotations:
          summary: "TCP retransmits on {{ .Labels.host }}"
  - name: hosts
    rules:
      - alert: CollectorDown
        signal: mciv_collector_up
        stat: max
        by: [cluster, host]
        detector: {type: absence, for: 3s}
        labels: {severity: critical}
`

const (
	labPartitions = 4
	labInterval   = 200 * time.Millisecond
	slackToken    = "xoxb-fleet-lab"
)

// lab is a running fleet: three nats-server processes, the built mciv
// binary, a fake Slack, and the analyzers and notifiers as child
// processes of that binary.
type lab struct {
	t         testing.TB
	cl        *fleetlab.Cluster
	bin       string
	slack     *slacktest.Server
	nc        *nats.Conn
	js        jetstream.JetStream
	rules     string
	analyzers []*fleetlab.Part
	notifiers []*fleetlab.Part

	lastOwnerErr atomic.Value // string
}

// startLab starts the cluster, builds mciv (both at once), makes the
// streams and starts the analyzers and notifiers.
func startLab(ctx context.Context, t testing.TB, analyzers, notifiers int, rules string) *lab {
	t.Helper()
	binDir := t.TempDir()
	type built struct {
		bin string
		err error
	}
	bc := make(chan built, 1)
	go func() {
		bin, err := fleetlab.BuildMciv(ctx, binDir)
		bc <- built{bin, err}
	}()
	l := &lab{t: t, cl: fleetlab.Start(ctx, t, 3), slack: slacktest.New(t, slackToken)}
	b := <-bc
	if b.err != nil {
		t.Fatal(b.err)
	}
	l.bin = b.bin
	nc, err := bus.Connect(ctx, l.cl.URLs(), bus.ConnectOptions{Name: "fleet-lab"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l.nc = nc
	l.js, _ = bus.JetStream(nc)
	// The cluster needs a moment to elect its meta leader.
	waitFor(t, 60*time.Second, "streams created", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := bus.EnsureStreams(sctx, l.js, bus.StreamOptions{Replicas: 3}); err != nil {
			return false
		}
		_, err := bus.EnsureInputStream(sctx, l.js, bus.InputOptions{Partitions: labPartitions, Replicas: 3})
		return err == nil
	})
	l.rules = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(l.rules, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := func(kind, name, conf string) *fleetlab.Part {
		p := fleetlab.StartPart(ctx, t, l.bin, kind, name, conf)
		mu.Lock()
		defer mu.Unlock()
		return p
	}
	l.analyzers = make([]*fleetlab.Part, analyzers)
	l.notifiers = make([]*fleetlab.Part, notifiers)
	for i := range analyzers {
		wg.Go(func() { l.analyzers[i] = start("analyzer", fmt.Sprintf("an-%d", i+1), l.analyzerConfig(i)) })
	}
	for i := range notifiers {
		wg.Go(func() { l.notifiers[i] = start("notifier", fmt.Sprintf("nt-%d", i+1), l.notifierConfig(i)) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return l
}

func (l *lab) analyzerConfig(i int) string {
	return fmt.Sprintf(`cluster: lab
host: an-%d
nats: {url: %q, partitions: %d, replicas: 3}
analyzer:
  partitioned: true
  rules: [%q]
  fleet: {pin_timeout: 2s, checkpoint_interval: 500ms, absence_grace: 5s, warmup: 1m}
`, i+1, l.cl.URLs(), labPartitions, l.rules)
}

func (l *lab) notifierConfig(i int) string {
	return fmt.Sprintf(`cluster: lab
host: nt-%d
nats: {url: %q, replicas: 3}
slack: {token: %q, channel: C0LAB, api_url: %q}
`, i+1, l.cl.URLs(), slackToken, l.slack.URL())
}

// owner is the member that owns partition p, from its checkpoint; ""
// when it cannot be read (logged once per distinct error).
func (l *lab) owner(ctx context.Context, p int) string {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	o, err := l.readOwner(rctx, p)
	if err != nil {
		if msg := err.Error(); l.lastOwnerErr.Swap(msg) != msg {
			l.t.Logf("owner of partition %d: %v", p, err)
		}
		return ""
	}
	return o
}

func (l *lab) readOwner(ctx context.Context, p int) (string, error) {
	kv, err := l.js.KeyValue(ctx, analyzer.CheckpointBucket)
	if err != nil {
		return "", err
	}
	e, err := kv.Get(ctx, fmt.Sprintf("p%d", p))
	if err != nil {
		return "", err
	}
	var ck struct{ Owner string }
	if err := json.Unmarshal(e.Value(), &ck); err != nil {
		return "", err
	}
	return ck.Owner, nil
}

// metric sums metric name (with labels) over the live parts ps.
func metric(ctx context.Context, ps []*fleetlab.Part, name string, labels ...string) float64 {
	var sum float64
	for _, p := range ps {
		if s, err := p.Metrics(ctx); err == nil {
			sum += s.Sum(name, labels...)
		}
	}
	return sum
}

// hosts simulates collectors: every host publishes one batch per
// interval through its own collector.StreamPublisher. A host set high
// reports 10 retransmits a second (the rule's threshold is 5).
type hosts struct {
	n        int
	pubs     []*collector.StreamPublisher
	seq      atomic.Int64
	high     []atomic.Bool
	highAt   []atomic.Int64 // unix nanos of the host's first high batch since set high
	dropHost atomic.Int64   // index of the host whose batches dropFrom and dropFrom+1 are dropped
	dropFrom atomic.Int64
}

func newHosts(t testing.TB, js jetstream.JetStream, n int) *hosts {
	h := &hosts{n: n, high: make([]atomic.Bool, n), highAt: make([]atomic.Int64, n)}
	h.dropHost.Store(-1)
	for range n {
		p, err := collector.NewStreamPublisher(js, collector.StreamPublisherConfig{Timeout: time.Second, RetryWait: 100 * time.Millisecond}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.pubs = append(h.pubs, p)
	}
	return h
}

// setHigh makes host i report retransmits (or stop).
func (h *hosts) setHigh(i int, on bool) {
	h.highAt[i].Store(0)
	h.high[i].Store(on)
}

// sinceHigh is how long ago host i's first high batch was made.
func (h *hosts) sinceHigh(i int) time.Duration {
	return time.Since(time.Unix(0, h.highAt[i].Load()))
}

// drop drops batches from and from+1 of host i.
func (h *hosts) drop(i int, from int64) {
	h.dropFrom.Store(from)
	h.dropHost.Store(int64(i))
}

// run publishes one batch per interval until ctx ends.
func (h *hosts) run(ctx context.Context) error {
	var wg sync.WaitGroup
	pctx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	for _, p := range h.pubs {
		wg.Go(func() { _ = p.Run(pctx) })
	}
	tk := time.NewTicker(labInterval)
	defer tk.Stop()
	for seq := 1; ; seq++ {
		h.seq.Store(int64(seq))
		for i, p := range h.pubs {
			host := fmt.Sprintf("h%d", i)
			if from := h.dropFrom.Load(); h.dropHost.Load() == int64(i) && (int64(seq) == from || int64(seq) == from+1) {
				continue
			}
			v := 0.0
			if h.high[i].Load() {
				v = 10
				h.highAt[i].CompareAndSwap(0, time.Now().UnixNano())
			}
			b := &wire.Batch{Cluster: "c", Host: host, Seq: uint64(seq), Start: time.Now().Add(-labInterval), Interval: labInterval,
				Series: []wire.Series{
					{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: v * labInterval.Seconds()},
					{Signal: "mciv_collector_up", Kind: wire.KindGauge, Value: 1},
				}}
			_ = p.PublishID(wire.SamplesSubject("c", host), wire.EncodeBatch(b), fmt.Sprintf("c.%s.lab.%d", host, seq))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
	}
}

func (h *hosts) stats() collector.StreamStats {
	var s collector.StreamStats
	for _, p := range h.pubs {
		st := p.Stats()
		s.Published += st.Published
		s.Retried += st.Retried
		s.Dropped += st.Dropped
		s.Buffered += st.Buffered
	}
	return s
}

// waitSeq waits until the hosts have published batch seq.
func (h *hosts) waitSeq(t testing.TB, seq int) {
	t.Helper()
	waitFor(t, time.Duration(seq)*labInterval+60*time.Second, fmt.Sprintf("batch %d", seq), func() bool { return h.seq.Load() >= int64(seq) })
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedAlerts reads every alert change stored in the alerts stream.
func storedAlerts(ctx context.Context, t testing.TB, js jetstream.JetStream) []*wire.Alert {
	t.Helper()
	st, err := js.Stream(ctx, bus.AlertsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*wire.Alert
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if a, err := wire.DecodeAlert(m.Data); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// TestFleetLab runs the fleet as it is deployed: three nats-server
// processes, two analyzers and two notifiers as `mciv analyzer|notifier
// --config` child processes, a fake Slack, and twelve simulated hosts
// publishing through the collector's StreamPublisher. While h3's alert
// fires it SIGKILLs the node that leads the input stream, then the
// analyzer that owns h3's partition, then a notifier (h3 resolves while
// it is down); h5 drops two batches; then it cuts the node that leads the
// alerts stream off with nftables while h7's alert fires, and heals it.
// Every transition of h3's and h7's alerts reaches Slack exactly once
// (the post, the update and the thread reply of its resolution), no other
// alert fires (no CollectorDown), the analyzers count exactly the two
// dropped batches, the hosts lose nothing, and the restarted analyzer
// gets its partitions back. It takes about 1.5 to 3.5 minutes (the build
// of mciv included); MCIV_FLEET_LAB=0 skips it.
func TestFleetLab(t *testing.T) {
	if os.Getenv("MCIV_FLEET_LAB") == "0" || testing.Short() {
		t.Skip("MCIV_FLEET_LAB=0 or -short")
	}
	testenv.RequireRoot(t) // the nodes run as uids of their own, for the cut
	testenv.RequireCommand(t, "nft")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	l := startLab(ctx, t, 2, 2, labRules)
	t.Logf("lab up in %.1fs", time.Since(began).Seconds())

	h := newHosts(t, l.js, 12)
	pctx, stopHosts := context.WithCancel(ctx)
	defer stopHosts()
	go func() { _ = h.run(pctx) }()
	h.waitSeq(t, 10)

	// h3 fires: its message is posted.
	h.setHigh(3, true)
	// wait waits for Slack messages about host: its post (the first
	// message), or its resolution (the update that says RESOLVED and the
	// thread reply).
	wait := func(host string, resolved bool, d time.Duration) {
		t.Helper()
		waitFor(t, d, fmt.Sprintf("slack messages about %s (resolved %v)", host, resolved), func() bool {
			var post, update, reply bool
			for _, m := range l.slack.Messages() {
				if messageHost(m.Text) != host {
					continue
				}
				switch {
				case m.Method == "chat.update":
					update = update || strings.Contains(m.Text, "RESOLVED")
				case m.ThreadTS != "":
					reply = true
				default:
					post = true
				}
			}
			return post && (!resolved || (update && reply))
		})
	}
	wait("h3", false, 30*time.Second)
	t.Logf("h3's alert posted %.2fs after its first high batch (seq %d)", h.sinceHigh(3).Seconds(), h.seq.Load())

	// SIGKILL of the input stream's leader.
	leader := l.leader(ctx, bus.InputStream)
	before := h.stats().Published
	killedAt := time.Now()
	l.cl.Kill(leader)
	t.Logf("SIGKILL of %s, the input stream's leader, at seq %d", l.cl.Nodes[leader].Name, h.seq.Load())
	waitFor(t, 60*time.Second, "batches stored again", func() bool { return h.stats().Published > before+24 })
	t.Logf("batches stored again %.2fs after the kill", time.Since(killedAt).Seconds())
	if err := l.cl.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	p3 := bus.PartitionOf("c", "h3", labPartitions)
	waitFor(t, 60*time.Second, "the owner of h3's partition readable after the node's restart", func() bool { return l.owner(ctx, p3) != "" })

	// SIGKILL of the analyzer that evaluates h3.
	owner := l.owner(ctx, p3)
	var victim, survivor *fleetlab.Part
	for _, a := range l.analyzers {
		if a.Name == owner {
			victim = a
		} else {
			survivor = a
		}
	}
	if victim == nil {
		t.Fatalf("partition %d (h3) has owner %q, not one of the analyzers", p3, owner)
	}
	victim.Kill()
	killedAt = time.Now()
	t.Logf("SIGKILL of %s, owner of h3's partition %d, at seq %d", victim.Name, p3, h.seq.Load())
	waitFor(t, 60*time.Second, survivor.Name+" to own h3's partition", func() bool { return l.owner(ctx, p3) == survivor.Name })
	t.Logf("%s took h3's partition over %.2fs after the kill", survivor.Name, time.Since(killedAt).Seconds())
	if err := victim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()

	// SIGKILL of a notifier while h3 fires; h3 resolves while it is down.
	l.notifiers[0].Kill()
	t.Logf("SIGKILL of %s at seq %d", l.notifiers[0].Name, h.seq.Load())
	// Rebalancing: the restarted analyzer gets back the partitions that
	// rendezvous hashing gives it.
	members := []string{l.analyzers[0].Name, l.analyzers[1].Name}
	waitFor(t, 60*time.Second, "every partition with its preferred member", func() bool {
		for p := range labPartitions {
			if l.owner(ctx, p) != analyzer.PreferredMember(members, p) {
				return false
			}
		}
		return true
	})
	t.Logf("%s got its share back %.2fs after its restart", victim.Name, time.Since(restarted).Seconds())
	h.setHigh(3, false)
	lowAt := time.Now()
	wait("h3", true, 60*time.Second)
	t.Logf("h3's resolution in Slack %.2fs after its last high batch", time.Since(lowAt).Seconds())
	if err := l.notifiers[0].Start(ctx); err != nil {
		t.Fatal(err)
	}

	// h5 drops two batches.
	from := h.seq.Load() + 2
	h.drop(5, from)
	h.waitSeq(t, int(from)+3)

	// The node that leads the alerts stream is cut off while h7 fires,
	// and healed 20 s later.
	cut := l.leader(ctx, bus.AlertsStream)
	if err := l.cl.Cut(ctx, cut); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("%s, the alerts stream's leader, cut off at seq %d", l.cl.Nodes[cut].Name, h.seq.Load())
	h.setHigh(7, true)
	wait("h7", false, 90*time.Second)
	t.Logf("h7's alert posted %.2fs after its first high batch, %.2fs after the cut", h.sinceHigh(7).Seconds(), time.Since(cutAt).Seconds())
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(time.Until(cutAt.Add(20 * time.Second))):
	}
	if err := l.cl.Heal(ctx, cut); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s healed at seq %d", l.cl.Nodes[cut].Name, h.seq.Load())
	h.setHigh(7, false)
	lowAt = time.Now()
	wait("h7", true, 90*time.Second)
	t.Logf("h7's resolution in Slack %.2fs after its last high batch", time.Since(lowAt).Seconds())

	st := h.stats()
	t.Logf("hosts: %d batches stored, %d attempts retried, %d dropped, %d waiting", st.Published, st.Retried, st.Dropped, st.Buffered)
	if st.Dropped != 0 || st.Buffered > 12*5 {
		t.Errorf("hosts dropped %d batches, %d still wait: want none dropped, nothing stuck", st.Dropped, st.Buffered)
	}
	waitFor(t, 30*time.Second, "h5's gap counted", func() bool {
		return metric(ctx, l.analyzers, "mciv_analyzer_batches_missed_total", "host", "h5") >= 2
	})
	time.Sleep(3 * time.Second) // anything sent twice would arrive now

	type count struct{ post, update, reply int }
	got := map[string]*count{"h3": {}, "h7": {}}
	for _, m := range l.slack.Messages() {
		t.Logf("slack: %s thread=%q %q", m.Method, m.ThreadTS, m.Text)
		c := got[messageHost(m.Text)]
		if c == nil || !strings.Contains(m.Text, "TCPRetransmitRateHigh") {
			t.Errorf("a message about neither h3 nor h7: %q", m.Text)
			continue
		}
		switch {
		case m.Method == "chat.update":
			c.update++
		case m.ThreadTS != "":
			c.reply++
		default:
			c.post++
		}
	}
	for host, c := range got {
		if c.post != 1 || c.update != 1 || c.reply != 1 {
			t.Errorf("slack got %d posts, %d updates, %d thread replies about %s: want one each (firing; resolved)", c.post, c.update, c.reply, host)
		}
	}
	stored := map[string]int{}
	for _, a := range storedAlerts(ctx, t, l.js) {
		t.Logf("stored: %s %s %s", a.Rule, a.Labels["host"], a.State)
		if a.Rule != "TCPRetransmitRateHigh" || (a.Labels["host"] != "h3" && a.Labels["host"] != "h7") {
			t.Errorf("unexpected alert %s on %s (%s)", a.Rule, a.Labels["host"], a.State)
			continue
		}
		stored[a.Labels["host"]+" "+string(a.State)]++
	}
	for _, k := range []string{"h3 firing", "h3 resolved", "h7 firing", "h7 resolved"} {
		if stored[k] != 1 {
			t.Errorf("%s: stored %d times, want once", k, stored[k])
		}
	}
	if got := metric(ctx, l.analyzers, "mciv_analyzer_batches_missed_total"); got != 2 {
		t.Errorf("the analyzers counted %v missed batches, want the 2 h5 dropped", got)
	}
	stopHosts()
	t.Logf("lab done in %.1fs", time.Since(began).Seconds())
}

// messageHost is the host a Slack message of the lab is about: "... on
// h3 (cluster c)" or "... on h3: value".
func messageHost(text string) string {
	_, rest, ok := strings.Cut(text, " on ")
	if !ok {
		return ""
	}
	host, _, _ := strings.Cut(rest, " ")
	return strings.TrimSuffix(host, ":")
}

// leader is the index of the node that leads stream name.
func (l *lab) leader(ctx context.Context, name string) int {
	l.t.Helper()
	var leader int
	waitFor(l.t, 60*time.Second, name+"'s leader", func() bool {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := l.js.Stream(ictx, name)
		if err != nil {
			return false
		}
		si, err := s.Info(ictx)
		if err != nil || si.Cluster == nil {
			return false
		}
		leader = l.cl.Index(si.Cluster.Leader)
		return leader >= 0
	})
	return leader
}
