package analyzer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/analyzer/eval"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

// CheckpointBucket is the JetStream KV bucket of partition checkpoints:
// key "p<n>" holds the alert lifecycles and host marks of partition n
// and the input stream sequence they include. Its revision fences the
// partition's owner: an owner whose compare-and-set fails has lost the
// partition and stops evaluating it.
const CheckpointBucket = "MCIV_PARTITIONS"

// PriorityGroup is the priority group of the partition consumers.
const PriorityGroup = "mciv"

// PartitionDurablePrefix starts the durable consumer names of the
// partitions: PartitionDurablePrefix + "<n>".
const PartitionDurablePrefix = "mciv-analyzer-p"

// Defaults of FleetConfig.
const (
	DefaultPinnedTTL          = 3 * time.Second
	DefaultCheckpointInterval = 2 * time.Second
	DefaultWarmup             = 10 * time.Minute
)

// FleetConfig makes the analyzer one member of a group that shares the
// partitions of the input stream (bus.InputStream). Each partition has a
// durable consumer with a pinned priority group: the server delivers a
// partition to one member at a time and moves it to another when the
// pinned one stops pulling for PinnedTTL. The owner checkpoints the
// partition's alert state to CheckpointBucket with compare-and-set, and
// every SnapshotInterval, right after such a checkpoint, its detectors'
// state to the object store DetectorsBucket (detectors.go); a new owner
// loads the checkpoint and the detector snapshot, replays the partition's
// batches from the snapshot's sequence (or, without a usable snapshot,
// from Warmup before the checkpoint) to the checkpoint silently (the
// detectors' baselines catch up, nothing is announced) and then from the
// checkpoint on (announced; alert message ids make a change announced
// twice stored once).
type FleetConfig struct {
	// Partitions is the number of partitions of the input stream; zero
	// turns fleet mode off.
	Partitions int
	// Member names this analyzer in checkpoints and logs; empty: the
	// hostname and process id.
	Member string
	// Replicas of the input stream and the checkpoint bucket (0: 1).
	Replicas int
	// Input shapes the input stream (its Partitions and Replicas are
	// taken from above).
	Input bus.InputOptions
	// Preferred, when set, says which partitions this member asks for at
	// once; it asks for the others only after twice PinnedTTL, so that
	// members spread the partitions between them at start.
	Preferred func(p int) bool
	// PinnedTTL is how long a pinned member may stay silent before the
	// server gives its partition to another (0: DefaultPinnedTTL).
	PinnedTTL time.Duration
	// CheckpointInterval is how often an owner checkpoints each partition
	// (0: DefaultCheckpointInterval).
	CheckpointInterval time.Duration
	// Warmup is how much history before a checkpoint a new owner replays
	// to rebuild baselines when the partition has no usable detector
	// snapshot (0: DefaultWarmup; negative: none).
	Warmup time.Duration
	// SnapshotInterval is how often an owner stores each partition's
	// detector snapshot (0: DefaultSnapshotInterval; negative: never, and
	// a new owner always replays Warmup).
	SnapshotInterval time.Duration
	// AbsenceGrace holds absence rules after a reconnect or a takeover
	// (0: DefaultAbsenceGrace; negative: none).
	AbsenceGrace time.Duration
	// NoRebalance keeps a partition with its owner even when a live
	// member prefers it (see Preferred and rebalance.go).
	NoRebalance bool
}

func (c FleetConfig) withDefaults() FleetConfig {
	if c.Member == "" {
		h, _ := os.Hostname()
		c.Member = h + "-" + strconv.Itoa(os.Getpid())
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.PinnedTTL <= 0 {
		c.PinnedTTL = DefaultPinnedTTL
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.AbsenceGrace == 0 {
		c.AbsenceGrace = DefaultAbsenceGrace
	}
	c.AbsenceGrace = max(0, c.AbsenceGrace)
	c.Input.Partitions, c.Input.Replicas = c.Partitions, c.Replicas
	return c
}

// Checkpoint is the stored state of one partition.
type Checkpoint struct {
	// Seq is the last input stream sequence whose alert changes are
	// published and included here; SeqTime is when it was stored.
	Seq     uint64    `json:"seq"`
	SeqTime time.Time `json:"seq_time"`
	// Owner is the member that wrote it, At when.
	Owner string    `json:"owner"`
	At    time.Time `json:"at"`
	// States are the partition's pending and firing alerts, Marks its
	// hosts' last batches. Missed batches up to the marks are counted
	// (by the owner that stored them); the next owner counts only gaps
	// after them.
	States []eval.GroupState `json:"states,omitempty"`
	Marks  []eval.HostMark   `json:"marks,omitempty"`
}

// fleet is the partition ownership of one analyzer.
type fleet struct {
	a      *Analyzer
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue
	obj    jetstream.ObjectStore // detector snapshots; nil when off

	mu    sync.Mutex        // guards hosts
	hosts map[[2]string]int // cluster, host -> partition, of owned partitions
	parts []*partitionRunner

	// members is who is up, for rebalancing (nil with NoRebalance);
	// membersSeen is closed once the watch delivered the initial view.
	members     *members
	membersSeen chan struct{}
	seenOnce    sync.Once

	lastDelivery atomic.Int64 // unix nanos of the last message delivered

	silence silence // of the input stream as a whole, seen by watchStall
}

// maxSilentHold is how long absence rules are held while the input stream
// as a whole stores nothing: every host silent at once says that their
// batches cannot reach the bus (the node they publish to cut off, say:
// clients leave such a node after about 15 s), not that every host died.
// Past it, a fleet that is really gone is judged absent.
const maxSilentHold = 30 * time.Second

// silence follows the input stream's last sequence.
type silence struct {
	last  uint64
	since time.Time // when last was first seen
}

// observe notes the stream's last sequence at now and reports whether
// the stream has stored nothing for a while (a check interval or more),
// but for less than maxSilentHold.
func (s *silence) observe(last uint64, now time.Time) bool {
	if last != s.last || s.since.IsZero() {
		s.last, s.since = last, now
		return false
	}
	return now.Sub(s.since) < maxSilentHold
}

// partitionRunner pulls one partition and evaluates it while it owns it.
type partitionRunner struct {
	f        *fleet
	n        int
	cons     jetstream.Consumer
	consumer string // its durable name

	lastDelivery atomic.Int64 // unix nanos of the last message of this partition

	owned   bool
	pin     string
	rev     uint64    // revision of the checkpoint we last wrote
	applied uint64    // last input sequence evaluated
	appTime time.Time // when it was stored
	saved   time.Time // when we last checkpointed
	since   time.Time // when we took it over
	// snapSaved is when we last stored the partition's detector snapshot.
	snapSaved time.Time

	// delivered is the consumer sequence of the last message the
	// consumer delivered us since we own the partition (0: none yet).
	delivered uint64

	// gaps are the batches each host missed that this owner saw after
	// its last stored checkpoint. They are counted only once a
	// checkpoint holds the hosts' marks past them: an owner that dies or
	// loses the partition before that leaves them to the next owner,
	// whose replay from the checkpoint sees them again. So each missed
	// batch is counted once across takeovers, hand-overs and restarts.
	// Only the runner's goroutine touches it.
	gaps map[[2]string]uint64
}

// runFleet is Run in fleet mode.
func (a *Analyzer) runFleet(ctx context.Context, nc *nats.Conn) error {
	fc := a.cfg.Fleet
	var stream jetstream.Stream
	err := a.setup(ctx, "input stream", func(ctx context.Context) (err error) {
		stream, err = bus.EnsureInputStream(ctx, a.js, fc.Input)
		return err
	})
	if err != nil {
		return fmt.Errorf("analyzer: %w", err)
	}
	kcfg := jetstream.KeyValueConfig{
		Bucket:      CheckpointBucket,
		Description: "mciv analyzer: partition checkpoints (alert state, host marks, input sequence)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    fc.Replicas,
		// One checkpoint per partition, rewritten in place (History 1):
		// 32 MiB bounds a flood without limiting a real fleet.
		MaxBytes: 32 << 20,
	}
	var kv jetstream.KeyValue
	err = a.setup(ctx, "checkpoint bucket", func(ctx context.Context) (err error) {
		kv, err = bus.EnsureKeyValue(ctx, a.js, kcfg)
		return err
	})
	if err != nil {
		return fmt.Errorf("analyzer: checkpoint bucket %s: %w", CheckpointBucket, err)
	}
	var obj jetstream.ObjectStore
	if fc.SnapshotInterval > 0 {
		err = a.setup(ctx, "detector snapshot store", func(ctx context.Context) (err error) {
			obj, err = a.ensureDetectorStore(ctx, fc.Replicas)
			return err
		})
		if err != nil {
			// Snapshots only spare new owners the warm-up: run without.
			a.log.Warn("detector snapshot store unavailable: new owners of partitions replay the warm-up", "bucket", DetectorsBucket, "err", err)
			obj = nil
		}
	}
	f := &fleet{a: a, js: a.js, stream: stream, kv: kv, obj: obj, hosts: map[[2]string]int{}, membersSeen: make(chan struct{})}
	for n := range fc.Partitions {
		durable := PartitionDurablePrefix + strconv.Itoa(n)
		ccfg := jetstream.ConsumerConfig{
			Durable:        durable,
			Description:    "mciv analyzers: partition " + strconv.Itoa(n),
			FilterSubject:  bus.PartitionFilter(n),
			DeliverPolicy:  jetstream.DeliverNewPolicy,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        30 * time.Second,
			MaxAckPending:  10000,
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PriorityGroups: []string{PriorityGroup},
			PinnedTTL:      fc.PinnedTTL,
			Replicas:       fc.Replicas,
		}
		var cons jetstream.Consumer
		err := a.setup(ctx, "partition consumer "+durable, func(ctx context.Context) (err error) {
			cons, err = stream.CreateOrUpdateConsumer(ctx, ccfg)
			return err
		})
		if err != nil {
			return fmt.Errorf("analyzer: partition %d consumer: %w", n, err)
		}
		f.parts = append(f.parts, &partitionRunner{f: f, n: n, cons: cons, consumer: durable})
	}
	a.outMu.Lock()
	a.fleet = f
	a.outMu.Unlock()
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if !fc.NoRebalance {
		f.members = newMembers(fc.Member, max(3*fc.CheckpointInterval, fc.PinnedTTL), time.Now)
		wg.Go(func() { f.runMembers(runCtx) })
		// Start from the members' view, so that each asks first for its
		// own partitions.
		select {
		case <-f.membersSeen:
		case <-time.After(2 * time.Second):
		}
	}
	wg.Go(func() { f.watchStall(runCtx) })
	for _, p := range f.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(runCtx)
		}()
	}
	a.readyOnce.Do(func() { close(a.ready) })
	a.log.Info("analyzer running in a fleet", "member", fc.Member, "partitions", fc.Partitions, "rules", a.Rules().NumRules())
	return a.loop(ctx, nc, func() {
		cancel()
		wg.Wait()
	})
}

// setupPatience is how long runFleet tries to set up each stream, bucket
// and consumer it needs while the bus cannot (a cluster still electing
// its leaders, a node just lost) before it gives up.
const setupPatience = time.Minute

// setup runs do, each attempt bounded by apiTimeout, until it succeeds,
// ctx ends or setupPatience passes.
func (a *Analyzer) setup(ctx context.Context, what string, do func(context.Context) error) error {
	deadline := time.Now().Add(setupPatience)
	for {
		actx, cancel := context.WithTimeout(ctx, apiTimeout)
		err := do(actx)
		cancel()
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		a.log.Warn("setting up the fleet; retrying", "what", what, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Owned returns the partitions this analyzer evaluates (fleet mode).
func (a *Analyzer) Owned() []int {
	a.outMu.Lock()
	f := a.fleet
	a.outMu.Unlock()
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, p := range f.parts {
		if p.owned {
			out = append(out, p.n)
		}
	}
	return out
}

func (f *fleet) inPartition(n int) func(cluster, host string) bool {
	return func(cluster, host string) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		p, ok := f.hosts[[2]string{cluster, host}]
		return ok && p == n
	}
}

func (f *fleet) setHost(cluster, host string, n int) {
	f.mu.Lock()
	f.hosts[[2]string{cluster, host}] = n
	f.mu.Unlock()
}

func (p *partitionRunner) key() string { return "p" + strconv.Itoa(p.n) }

// run pulls the partition until ctx ends.
func (p *partitionRunner) run(ctx context.Context) {
	a := p.f.a
	fc := a.cfg.Fleet
	preferred := fc.Preferred
	if preferred == nil && p.f.members != nil {
		preferred = func(n int) bool { return p.f.members.preferred(n) == fc.Member }
	}
	if preferred != nil && !preferred(p.n) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * fc.PinnedTTL):
		}
	}
	expiry := max(fc.PinnedTTL/2, time.Second)
	for ctx.Err() == nil {
		p.pull(ctx, expiry)
		if p.owned && time.Since(p.saved) >= fc.CheckpointInterval {
			p.checkpoint(ctx)
		}
		p.maybeRelease(ctx)
	}
}

// pull fetches and evaluates what the consumer delivers within expiry.
func (p *partitionRunner) pull(ctx context.Context, expiry time.Duration) {
	fctx, cancel := context.WithTimeout(ctx, expiry)
	defer cancel()
	batch, err := p.cons.Fetch(256, jetstream.FetchPriorityGroup(PriorityGroup), jetstream.FetchContext(fctx))
	if err != nil {
		p.fetchFailed(ctx, err)
		return
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		p.deliver(ctx, msg)
		if p.owned && time.Since(p.saved) >= p.f.a.cfg.Fleet.CheckpointInterval {
			p.checkpoint(ctx)
		}
	}
	if !p.owned {
		p.f.a.log.Debug("partition pulled", "partition", p.n, "messages", got, "err", batch.Error())
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		p.fetchFailed(ctx, err)
	}
}

func (p *partitionRunner) fetchFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, jetstream.ErrPinIDMismatch) && p.owned {
		p.lose("another member is pinned")
		return
	}
	// The stream cannot deliver (leader election, a lost node): its
	// hosts' silence says nothing about them.
	if a := p.f.a; a.cfg.Fleet.AbsenceGrace > 0 && a.grace.start(a.cfg.Now(), a.cfg.Fleet.AbsenceGrace) {
		a.fm.graces.Inc()
	}
	p.f.a.log.Debug("partition fetch failed", "partition", p.n, "err", err)
	select {
	case <-ctx.Done():
	case <-time.After(250 * time.Millisecond):
	}
}

// deliver evaluates one message of the durable consumer, taking the
// partition over first when the message says we were (newly) pinned.
func (p *partitionRunner) deliver(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	seq := md.Sequence.Stream
	now := time.Now().UnixNano()
	p.f.lastDelivery.Store(now)
	p.lastDelivery.Store(now)
	pin := msg.Headers().Get("Nats-Pin-Id")
	if !p.owned || (pin != "" && pin != p.pin) {
		if p.owned {
			p.lose("pinned anew")
		}
		stop := p.keepPinned(ctx)
		err := p.takeover(ctx, seq, md.Timestamp)
		stop()
		if err != nil {
			p.f.a.log.Warn("partition takeover failed; retrying", "partition", p.n, "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
		p.pin, p.delivered = pin, 0
	}
	if cseq := md.Sequence.Consumer; p.delivered > 0 && cseq > p.delivered+1 && seq > p.applied+1 {
		// A delivery between the last one we got and this one never
		// reached us: it went down with a connection to a node that died
		// or was cut off, or reached a pull request that had expired. The
		// server sends it again only after AckWait, when its host's next
		// batches are evaluated: the batch would count as missed, then be
		// refused as out of order. Read what lies between from the stream.
		stop := p.keepPinned(ctx)
		err := p.catchUp(ctx, seq)
		stop()
		if err != nil {
			p.f.a.log.Warn("partition catch-up failed; retrying", "partition", p.n, "from", p.applied+1, "to", seq, "err", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
	}
	p.delivered = md.Sequence.Consumer
	if seq > p.applied {
		p.holdWhileBehind(md.Timestamp)
		p.apply(ctx, msg.Subject(), msg.Data(), seq, md.Timestamp, true)
	}
	_ = msg.Ack()
}

// keepPinned keeps this member pinned while it is busy with work that
// does not pull (a takeover's replay, a catch-up), until the returned
// func is called: the server unpins a member that sends no pull request
// with its pin id for PinnedTTL, and a replay longer than that would
// lose the partition it is taking over, again at every attempt. A pull
// request for at most one byte renews the pin and is never filled: the
// server answers it without a message, every message being larger.
func (p *partitionRunner) keepPinned(ctx context.Context) (stop func()) {
	every := max(p.f.a.cfg.Fleet.PinnedTTL/3, 100*time.Millisecond)
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if b, err := p.cons.FetchBytes(1, jetstream.FetchPriorityGroup(PriorityGroup), jetstream.FetchMaxWait(every/2)); err == nil {
				for m := range b.Messages() {
					_ = m.Nak() // (cannot happen: no message fits in a byte)
				}
			}
			select {
			case <-kctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// catchUp evaluates, announcing, the partition's messages stored after
// the last one evaluated and before stream sequence first.
func (p *partitionRunner) catchUp(ctx context.Context, first uint64) error {
	from := p.applied + 1
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	n, err := p.read(ctx, cfg, first-1, func(m jetstream.Msg, s uint64, at time.Time) {
		if s > p.applied {
			p.holdWhileBehind(at)
			p.apply(ctx, m.Subject(), m.Data(), s, at, true)
		}
	})
	p.f.a.fm.replayed.Add(float64(n))
	p.f.a.log.Debug("partition caught up after a lost delivery", "partition", p.n, "from", from, "to", first, "read", n, "err", err)
	return err
}

// maxReadLag is how far behind the stream the analyzer may read and still
// judge hosts absent: beyond it, the silence it sees is its own backlog.
const maxReadLag = 2 * time.Second

// holdWhileBehind holds absence rules while the analyzer reads messages
// stored more than maxReadLag ago: a host is absent only if the analyzer
// is caught up and still hears nothing from it.
func (p *partitionRunner) holdWhileBehind(stored time.Time) {
	a := p.f.a
	now := a.cfg.Now()
	if a.cfg.Fleet.AbsenceGrace <= 0 || now.Sub(stored) <= maxReadLag {
		return
	}
	if a.grace.start(now, a.cfg.Fleet.AbsenceGrace) {
		a.fm.graces.Inc()
	}
}

// apply evaluates one input message.
func (p *partitionRunner) apply(ctx context.Context, subject string, data []byte, seq uint64, at time.Time, announce bool) {
	_, orig, err := bus.SplitPartition(subject)
	if err == nil {
		prefix, cluster, host, perr := wire.ParseHostSubject(orig)
		if perr == nil {
			p.f.setHost(cluster, host, p.n)
			if prefix == wire.SamplesPrefix {
				if _, missed := p.f.a.handle(ctx, orig, data, announce); missed > 0 {
					if p.gaps == nil {
						p.gaps = map[[2]string]uint64{}
					}
					p.gaps[[2]string{cluster, host}] += missed
				}
			}
		} else {
			p.f.a.refuse(subject, BadSubject, perr)
		}
	} else {
		p.f.a.refuse(subject, BadSubject, err)
	}
	p.applied, p.appTime = seq, at
}

// takeover makes this member the owner of the partition: it claims the
// checkpoint (compare-and-set, so that the previous owner's next
// checkpoint fails), replays the warm-up without announcing, restores the
// checkpoint's alert state and replays the rest announcing, up to first
// (the first message the consumer delivered us) or the end of the stream
// if that is further. The end matters when first is a redelivery (of a
// message whose delivery was lost, sent again after AckWait): the
// consumer's next new message can lie far beyond it, and what the
// previous owner evaluated after its checkpoint lies in between.
func (p *partitionRunner) takeover(ctx context.Context, first uint64, firstTime time.Time) error {
	a := p.f.a
	fc := a.cfg.Fleet
	start := time.Now()
	if fc.AbsenceGrace > 0 && a.grace.start(a.cfg.Now(), fc.AbsenceGrace) {
		a.fm.graces.Inc()
	}
	var ck Checkpoint
	var rev uint64
	found := false
	gctx, cancel := context.WithTimeout(ctx, apiTimeout)
	e, err := p.f.kv.Get(gctx, p.key())
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("reading checkpoint: %w", err)
	default:
		rev, found = e.Revision(), true
		if err := json.Unmarshal(e.Value(), &ck); err != nil {
			a.log.Warn("unreadable checkpoint ignored", "partition", p.n, "err", err)
			ck, found = Checkpoint{}, false
		}
	}
	// Without a checkpoint nobody announced anything of this partition
	// that the consumer will not deliver: replay only to warm up.
	ckSeq, ckTime := ck.Seq, ck.SeqTime
	if !found {
		ckSeq, ckTime = first-1, firstTime
	}
	claim := ck
	claim.Seq, claim.SeqTime = ckSeq, ckTime
	claim.Owner, claim.At = fc.Member, time.Now()
	data, err := json.Marshal(&claim)
	if err != nil {
		return fmt.Errorf("encoding checkpoint: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, apiTimeout)
	if rev == 0 {
		rev, err = p.f.kv.Create(cctx, p.key(), data)
	} else {
		rev, err = p.f.kv.Update(cctx, p.key(), data, rev)
	}
	cancel()
	if err != nil {
		return fmt.Errorf("claiming checkpoint: %w", err)
	}
	keep := p.f.inPartition(p.n)
	a.mu.Lock()
	a.engine.Forget(keep)
	a.mu.Unlock()
	// What this member evaluated of the partition before (an earlier
	// ownership, a takeover that failed halfway) is forgotten with the
	// engine's state: messages from the replay's end on must be evaluated
	// again, not acknowledged as done, and their gaps counted again.
	p.applied, p.appTime = 0, time.Time{}
	p.gaps = nil

	// The detector snapshot: usable when it is no later than the
	// checkpoint and the stream still holds every message after it.
	from := RestoredFromWarmup
	if fc.Warmup < 0 {
		from = RestoredFromNone
	}
	ictx, cancel := context.WithTimeout(ctx, apiTimeout)
	info, err := p.f.stream.Info(ictx)
	cancel()
	if err != nil {
		return fmt.Errorf("reading the input stream's end: %w", err)
	}
	snapSeq := uint64(0)
	if sh, state, err := p.loadSnapshot(ctx); err != nil {
		a.log.Warn("detector snapshot unusable: replaying the warm-up", "partition", p.n, "err", err)
	} else if state != nil {
		switch {
		case sh.Seq > ckSeq:
			a.log.Warn("detector snapshot ahead of the checkpoint ignored", "partition", p.n, "snapshot_seq", sh.Seq, "checkpoint_seq", ckSeq)
		case sh.Seq < ckSeq && sh.Seq+1 < info.State.FirstSeq:
			a.log.Warn("detector snapshot older than the stream keeps ignored", "partition", p.n, "snapshot_seq", sh.Seq, "stream_first", info.State.FirstSeq)
		default:
			a.mu.Lock()
			n, err := a.engine.LoadDetectors(state, func(cluster, host string) bool {
				// (A host the partition count moved elsewhere is not ours.)
				if bus.PartitionOf(cluster, host, fc.Partitions) != p.n {
					return false
				}
				p.f.setHost(cluster, host, p.n)
				return true
			}, a.cfg.Now())
			a.mu.Unlock()
			if err != nil {
				a.log.Warn("detector snapshot unreadable: replaying the warm-up", "partition", p.n, "err", err)
				break
			}
			from, snapSeq = RestoredFromSnapshot, sh.Seq
			a.log.Info("detector snapshot loaded", "partition", p.n, "snapshot_seq", sh.Seq, "checkpoint_seq", ckSeq,
				"hosts", n.Hosts, "groups", n.Groups, "skipped", n.Skipped, "age", time.Since(sh.SavedAt))
		}
	}

	replayed, overlaid := 0, false
	overlay := func() {
		a.mu.Lock()
		a.engine.Overlay(keep, ck.States, ck.Marks)
		a.mu.Unlock()
		overlaid = true
	}
	for _, m := range ck.Marks {
		p.f.setHost(m.Cluster, m.Host, p.n)
	}
	until := max(first-1, info.State.LastSeq)
	if until > 0 {
		var cfg jetstream.OrderedConsumerConfig
		if from == RestoredFromSnapshot {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, snapSeq+1
		} else if fc.Warmup > 0 {
			t := ckTime.Add(-fc.Warmup)
			if ckTime.IsZero() {
				t = time.Now().Add(-fc.Warmup)
			}
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		} else {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, ckSeq+1
		}
		var err error
		replayed, err = p.read(ctx, cfg, until, func(m jetstream.Msg, s uint64, at time.Time) {
			if s > ckSeq && !overlaid {
				overlay()
			}
			p.apply(ctx, m.Subject(), m.Data(), s, at, s > ckSeq)
		})
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	if !overlaid {
		overlay()
	}
	a.fm.replayed.Add(float64(replayed))
	p.f.mu.Lock()
	p.owned, p.rev, p.saved, p.since = true, rev, time.Now(), time.Now()
	p.f.mu.Unlock()
	if p.applied < ckSeq {
		p.applied, p.appTime = ckSeq, ckTime
	}
	a.fm.takeovers.Inc()
	a.fm.restores.WithLabelValues(from).Inc()
	a.fm.owned.Inc()
	a.log.Info("partition taken over", "partition", p.n, "member", fc.Member, "from", ck.Owner, "baselines", from,
		"checkpoint_seq", ck.Seq, "first", first, "until", until, "replayed", replayed, "alerts", len(ck.States), "took", time.Since(start))
	return nil
}

// read reads the partition's messages from where cfg starts up to stream
// sequence until, handing each to each; it returns how many it read. It
// stops early only when nothing more is stored up to until.
func (p *partitionRunner) read(ctx context.Context, cfg jetstream.OrderedConsumerConfig, until uint64, each func(m jetstream.Msg, s uint64, at time.Time)) (int, error) {
	cfg.FilterSubjects = []string{bus.PartitionFilter(p.n)}
	octx, cancel := context.WithTimeout(ctx, apiTimeout)
	oc, err := p.f.stream.OrderedConsumer(octx, cfg)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("consumer: %w", err)
	}
	read, empty := 0, 0
	for {
		// A short wait: a fetch waits for a full batch, so its wait is
		// added to every takeover after the partition's last message.
		b, err := oc.Fetch(512, jetstream.FetchMaxWait(replayStallWait))
		if err != nil {
			return read, err
		}
		n := 0
		for m := range b.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			s := md.Sequence.Stream
			if s > until {
				return read, nil
			}
			each(m, s, md.Timestamp)
			read++
			if s == until {
				return read, nil
			}
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			return read, err
		}
		if n > 0 {
			empty = 0
			continue
		}
		// Nothing came. Message until is stored and the read has not
		// reached it: the stream stalls (a leader election, a node cut
		// off) unless nothing at all is left to deliver. Evaluating on
		// now would skip what lies between: alert changes lost, batches
		// counted as missed.
		ictx, cancel := context.WithTimeout(ctx, apiTimeout)
		info, err := oc.Info(ictx)
		cancel()
		if err != nil {
			return read, err
		}
		if info.NumPending == 0 {
			return read, nil // nothing more stored up to until
		}
		if empty++; empty >= replayStalls {
			return read, fmt.Errorf("stalled after %d messages: %d more to read up to sequence %d", read, info.NumPending, until)
		}
	}
}

// apiTimeout bounds each JetStream API request of a partition's owner: a
// request lost with a node that died or was cut off is never answered,
// and the context of Run may carry no deadline, or a distant one. Without
// it a takeover could wait for an answer that never comes while the
// partition goes unevaluated.
const apiTimeout = 5 * time.Second

// replayStalls is how many empty fetches in a row, of replayStallWait
// each, a takeover's replay or a catch-up accepts while messages it has
// not read remain (the stream stalls) before it gives up and is tried
// again.
const (
	replayStalls    = 25
	replayStallWait = 200 * time.Millisecond
)

// checkpoint publishes what is queued and stores the partition's state
// with compare-and-set; a conflict means another member owns the
// partition now. It reports whether the checkpoint was stored.
func (p *partitionRunner) checkpoint(ctx context.Context) bool {
	a := p.f.a
	keep := p.f.inPartition(p.n)
	// The detector snapshot, when due, is taken with the checkpoint: both
	// hold the partition as of p.applied (only this goroutine evaluates
	// the partition's batches).
	var snap []byte
	snapDue := p.f.obj != nil && time.Since(p.snapSaved) >= a.cfg.Fleet.SnapshotInterval
	a.mu.Lock()
	states, marks := a.engine.Snapshot(keep)
	if snapDue {
		snap = appendSnapHeader(nil, snapHeader{Seq: p.applied, SeqTime: p.appTime, SavedAt: time.Now()})
		snap = a.engine.AppendDetectors(snap, keep)
	}
	a.mu.Unlock()
	ck := Checkpoint{Seq: p.applied, SeqTime: p.appTime, Owner: a.cfg.Fleet.Member, At: time.Now(), States: states, Marks: marks}
	fctx, cancel := context.WithTimeout(ctx, a.cfg.PublishTimeout)
	defer cancel()
	if err := a.Flush(fctx); err != nil {
		a.log.Debug("checkpoint waits for queued alert changes", "partition", p.n, "err", err)
		return false
	}
	data, err := json.Marshal(&ck)
	if err != nil {
		a.log.Error("cannot encode checkpoint", "partition", p.n, "err", err)
		return false
	}
	rev, err := p.f.kv.Update(fctx, p.key(), data, p.rev)
	if bus.IsConflict(err) {
		p.lose("checkpoint compare-and-set failed")
		return false
	}
	if err != nil {
		a.log.Debug("checkpoint failed; retrying", "partition", p.n, "err", err)
		return false
	}
	p.rev, p.saved = rev, time.Now()
	a.fm.checkpoints.Inc()
	// The stored marks are past every gap seen so far: count them now.
	for k, n := range p.gaps {
		a.countMissed(k[0], k[1], n)
	}
	p.gaps = nil
	if snap != nil {
		// Our compare-and-set held: we own the partition, and the
		// snapshot's sequence is the checkpoint's.
		p.saveSnapshot(ctx, snap)
	}
	return true
}

// lose stops evaluating the partition and forgets its hosts.
func (p *partitionRunner) lose(why string) {
	a := p.f.a
	if !p.owned {
		return
	}
	keep := p.f.inPartition(p.n)
	a.mu.Lock()
	a.engine.Forget(keep)
	a.mu.Unlock()
	p.f.mu.Lock()
	for k, n := range p.f.hosts {
		if n == p.n {
			delete(p.f.hosts, k)
		}
	}
	p.owned, p.pin = false, ""
	p.f.mu.Unlock()
	// The next owner replays from our last checkpoint and counts these.
	p.gaps = nil
	a.fm.lost.Inc()
	a.fm.owned.Dec()
	a.log.Warn("partition lost", "partition", p.n, "member", a.cfg.Fleet.Member, "why", why)
}

// watchStall holds absence rules while the input stream stalls: when
// nothing was delivered for half a second to a member that owns
// partitions, it asks the stream for its state, and a stream that does
// not answer (no leader: an election after its leader died) or has no
// leader starts (or extends) the absence grace. So does an owned
// partition quiet for half a second whose consumer does not answer, has
// no leader, or holds messages it does not deliver: a partition's
// consumer has a raft group of its own, and the node that leads it may
// be gone (killed, cut off) while the stream and the other partitions
// flow. A stalled pull times out like a quiet one, so the pulls alone
// cannot tell.
func (f *fleet) watchStall(ctx context.Context) {
	a := f.a
	if a.cfg.Fleet.AbsenceGrace <= 0 {
		return
	}
	const quiet, every = 500 * time.Millisecond, 250 * time.Millisecond
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.holdAfterPause(time.Since(last), every)
		last = time.Now()
		if len(a.Owned()) == 0 {
			continue
		}
		why, err := f.stalled(ctx, quiet)
		if ctx.Err() != nil {
			return
		}
		if why == "" {
			continue
		}
		if a.grace.start(a.cfg.Now(), a.cfg.Fleet.AbsenceGrace) {
			a.fm.graces.Inc()
		}
		a.log.Debug("input stalled: absence rules held", "why", why, "err", err)
	}
}

// stalled says why the input of this member stalls, or "".
func (f *fleet) stalled(ctx context.Context, quiet time.Duration) (string, error) {
	if time.Since(time.Unix(0, f.lastDelivery.Load())) >= quiet {
		ictx, cancel := context.WithTimeout(ctx, quiet)
		info, err := f.stream.Info(ictx)
		cancel()
		if err != nil || (info.Cluster != nil && info.Cluster.Leader == "") {
			return "input stream without leader", err
		}
		if f.silence.observe(info.State.LastSeq, time.Now()) {
			return "input stream stores nothing: the hosts cannot reach the bus", nil
		}
	}
	for _, p := range f.parts {
		f.mu.Lock()
		owned := p.owned
		f.mu.Unlock()
		if !owned || time.Since(time.Unix(0, p.lastDelivery.Load())) < quiet {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, quiet)
		info, err := p.cons.Info(ictx)
		cancel()
		switch {
		case err != nil:
			return fmt.Sprintf("partition %d: consumer does not answer", p.n), err
		case info.Cluster != nil && info.Cluster.Leader == "":
			return fmt.Sprintf("partition %d: consumer without leader", p.n), nil
		case info.NumPending > 0:
			return fmt.Sprintf("partition %d: %d messages not delivered", p.n, info.NumPending), nil
		}
	}
	return "", nil
}
