package analyzer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/detect"
	"github.com/mciv/mciv/rules"
)

// Detector snapshots: the learnt baselines of the detectors, so that a new
// owner of a partition (fleet mode) or a restarted analyzer (single
// process) judges the next batch as the previous one would have, without
// a warm-up.
//
// In fleet mode the owner of a partition stores its hosts' detector state
// in the JetStream object store DetectorsBucket (object "p<n>") every
// FleetConfig.SnapshotInterval, right after a checkpoint it stored (its
// compare-and-set held: it still owns the partition), tagged with the
// checkpoint's input sequence. A new owner loads it and replays silently
// from that sequence to the checkpoint's, instead of replaying Warmup.
// Single process, the analyzer writes the engine's detector state to
// Config.DetectorsFile on the way out and every DetectorsSaveInterval,
// and loads it at start.

// DetectorsBucket is the JetStream object store of the partitions'
// detector snapshots.
const DetectorsBucket = "MCIV_DETECTORS"

// DetectorsFileName is the file of the detector state in a single
// process analyzer's OutboxDir (<data_dir>/analyzer).
const DetectorsFileName = "detectors.state"

// Defaults of the snapshot cadences.
const (
	DefaultSnapshotInterval      = 30 * time.Second
	DefaultDetectorsSaveInterval = time.Minute
)

// Where a new owner's detector baselines came from
// (mciv_analyzer_partition_restores_total{from}).
const (
	RestoredFromSnapshot = "snapshot" // the partition's detector snapshot
	RestoredFromWarmup   = "warmup"   // a replay of Warmup before the checkpoint
	RestoredFromNone     = "none"     // neither: detectors start afresh
)

// Outcomes of loading the detector state file
// (mciv_analyzer_detector_state_loads_total{result}).
const (
	StateLoaded  = "loaded"
	StateMissing = "missing"
	StateCorrupt = "corrupt"
	StateStale   = "stale"
)

// snapHeader heads a stored detector snapshot: the input stream
// sequence it includes (fleet mode; 0 single process) and when it was
// taken.
type snapHeader struct {
	Seq     uint64
	SeqTime time.Time
	SavedAt time.Time
}

const (
	snapMagic   = "mcDF"
	snapVersion = 1
	snapHeadLen = len(snapMagic) + 1 + 3*8 + 4
)

var snapCRC = crc32.MakeTable(crc32.Castagnoli)

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOrZero(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// appendSnapHeader appends h, with its checksum, to dst.
func appendSnapHeader(dst []byte, h snapHeader) []byte {
	start := len(dst)
	dst = append(dst, snapMagic...)
	dst = append(dst, snapVersion)
	dst = binary.LittleEndian.AppendUint64(dst, h.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(unixOrZero(h.SeqTime)))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(unixOrZero(h.SavedAt)))
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], snapCRC))
}

// splitSnapshot checks a stored snapshot's header and returns it and the
// engine's detector state (see eval.Engine.AppendDetectors) after it.
func splitSnapshot(b []byte) (snapHeader, []byte, error) {
	var h snapHeader
	if len(b) < snapHeadLen || string(b[:len(snapMagic)]) != snapMagic {
		return h, nil, errors.New("not a detector snapshot")
	}
	if v := b[len(snapMagic)]; v != snapVersion {
		return h, nil, fmt.Errorf("detector snapshot version %d (want %d)", v, snapVersion)
	}
	if crc32.Checksum(b[:snapHeadLen-4], snapCRC) != binary.LittleEndian.Uint32(b[snapHeadLen-4:]) {
		return h, nil, errors.New("detector snapshot header: checksum mismatch")
	}
	p := b[len(snapMagic)+1:]
	h.Seq = binary.LittleEndian.Uint64(p)
	h.SeqTime = timeOrZero(int64(binary.LittleEndian.Uint64(p[8:])))
	h.SavedAt = timeOrZero(int64(binary.LittleEndian.Uint64(p[16:])))
	return h, b[snapHeadLen:], nil
}

// ensureDetectorStore creates (or binds) the object store of the
// partitions' detector snapshots.
func (a *Analyzer) ensureDetectorStore(ctx context.Context, replicas int) (jetstream.ObjectStore, error) {
	cfg := jetstream.ObjectStoreConfig{
		Bucket:      DetectorsBucket,
		Description: "mciv analyzer: detector snapshots of the partitions (baselines for a new owner)",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
	store, err := a.js.ObjectStore(ctx, DetectorsBucket)
	if err == nil {
		return store, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	store, err = a.js.CreateObjectStore(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		return a.js.ObjectStore(ctx, DetectorsBucket)
	}
	return store, err
}

// snapshotObject is the object name of partition p's detector snapshot.
func (p *partitionRunner) snapshotObject() string { return p.key() }

// saveSnapshot stores the partition's detector snapshot. It is called
// right after a checkpoint was stored, so only the partition's owner
// writes it; blob holds the state as of the checkpoint's sequence.
func (p *partitionRunner) saveSnapshot(ctx context.Context, blob []byte) {
	a := p.f.a
	if p.f.obj == nil {
		return
	}
	octx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	_, err := p.f.obj.Put(octx, jetstream.ObjectMeta{Name: p.snapshotObject()}, bytes.NewReader(blob))
	if err != nil {
		a.fm.snapshots.WithLabelValues("failed").Inc()
		a.log.Warn("detector snapshot not stored", "partition", p.n, "bytes", len(blob), "err", err)
		return
	}
	p.snapSaved = time.Now()
	a.fm.snapshots.WithLabelValues("stored").Inc()
	a.log.Debug("detector snapshot stored", "partition", p.n, "bytes", len(blob))
}

// loadSnapshot reads the partition's detector snapshot: its header and
// the engine's state, or a nil state when there is none.
func (p *partitionRunner) loadSnapshot(ctx context.Context) (snapHeader, []byte, error) {
	if p.f.obj == nil {
		return snapHeader{}, nil, nil
	}
	octx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	r, err := p.f.obj.Get(octx, p.snapshotObject())
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return snapHeader{}, nil, nil
	}
	if err != nil {
		return snapHeader{}, nil, fmt.Errorf("reading detector snapshot: %w", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return snapHeader{}, nil, fmt.Errorf("reading detector snapshot: %w", err)
	}
	h, state, err := splitSnapshot(b)
	if err != nil {
		return snapHeader{}, nil, err
	}
	return h, state, nil
}

// maxBaseline is the longest time any rule's detector learns over (its
// baseline, period, window or warm-up), at least an hour: detector state
// older than that is stale.
func maxBaseline(set *rules.Set) time.Duration {
	longest := time.Hour
	for _, r := range set.Rules() {
		s, ok := r.Detector.(*detect.StatSpec)
		if !ok {
			continue
		}
		c := s.Config()
		longest = max(longest, c.Baseline, c.Period, c.Window, c.Warmup, c.For)
	}
	return longest
}

// detectorsFile is where a single process analyzer keeps its detector
// state, or "".
func (c *Config) detectorsFile() string {
	switch {
	case c.DetectorsFile != "":
		return c.DetectorsFile
	case c.OutboxDir != "":
		return filepath.Join(c.OutboxDir, DetectorsFileName)
	}
	return ""
}

// saveDetectorsFile writes the engine's detector state to the detectors
// file atomically: a temporary file beside it, fsynced, renamed over it,
// and the directory fsynced.
func (a *Analyzer) saveDetectorsFile() error {
	path := a.cfg.detectorsFile()
	if path == "" {
		return nil
	}
	a.mu.Lock()
	blob := appendSnapHeader(nil, snapHeader{SavedAt: a.cfg.Now()})
	blob = a.engine.AppendDetectors(blob, nil)
	a.mu.Unlock()
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("detector state: %w", err)
	}
	f, err := os.CreateTemp(dir, DetectorsFileName+".tmp*")
	if err != nil {
		return fmt.Errorf("detector state: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(blob)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("detector state %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	a.detSaved = time.Now()
	a.log.Debug("detector state saved", "file", path, "bytes", len(blob))
	return nil
}

// loadDetectorsFile loads the detector state file into the engine, unless
// it is missing, corrupt or older than the rules' longest baseline; it
// returns the outcome (StateLoaded, ...).
func (a *Analyzer) loadDetectorsFile() string {
	path := a.cfg.detectorsFile()
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		a.fm.stateLoads.WithLabelValues(StateMissing).Inc()
		return StateMissing
	}
	result := StateCorrupt
	var h snapHeader
	var state []byte
	if err == nil {
		h, state, err = splitSnapshot(b)
	}
	now := a.cfg.Now()
	if err == nil {
		if age := now.Sub(h.SavedAt); age > maxBaseline(a.Rules()) {
			a.fm.stateLoads.WithLabelValues(StateStale).Inc()
			a.log.Warn("detector state too old: detectors start afresh", "file", path, "age", age)
			return StateStale
		}
		a.mu.Lock()
		n, lerr := a.engine.LoadDetectors(state, nil, now)
		a.mu.Unlock()
		if lerr == nil {
			a.fm.stateLoads.WithLabelValues(StateLoaded).Inc()
			a.log.Info("detector state loaded: baselines kept across the restart", "file", path,
				"hosts", n.Hosts, "groups", n.Groups, "skipped", n.Skipped, "age", now.Sub(h.SavedAt))
			return StateLoaded
		}
		err = lerr
	}
	a.fm.stateLoads.WithLabelValues(result).Inc()
	a.log.Warn("detector state unreadable: detectors start afresh", "file", path, "err", err)
	return result
}
