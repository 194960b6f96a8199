package eval

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/detect"
	"github.com/mciv/mciv/rules"
)

// Detector state: the learnt baselines of the alert groups of a set of
// hosts, so that a new owner of their partition (or a restarted analyzer)
// judges the next batch as the old one would have, without a warm-up.
//
// The encoding is the magic "mcED", DetectorsVersion, the hosts, each
// with its batch mark and its alert groups (rule name, a key of the
// rule's definition, by values, last value, times, evidence run and the
// detector's own state, see detect.Stater), and a CRC-32C of all that.
// A group is restored only into a rule of the same name and definition
// key and the same number of by labels, whose fresh detector accepts the
// state: anything else is skipped and counted, never given to another
// rule or series. Alert lifecycles are not part of it (see Snapshot and
// Restore): a restored group keeps the lifecycle it has.

// DetectorsVersion is the version of the encoding of AppendDetectors.
const DetectorsVersion = 1

const detectorsMagic = "mcED"

// ErrDetectorsCorrupt is returned by LoadDetectors for input that is
// truncated, fails its checksum or is of another version.
var ErrDetectorsCorrupt = errors.New("corrupt detector snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DetectorsLoaded counts what LoadDetectors restored and skipped.
type DetectorsLoaded struct {
	// Hosts whose batch mark was restored.
	Hosts int
	// Groups whose detector state was restored.
	Groups int
	// Skipped are groups whose rule no longer exists or changed, or
	// whose detector refused the state.
	Skipped int
}

// ruleKey identifies a rule's definition as far as its detector state
// depends on it: signal, stat, by labels, detector and evidence.
func ruleKey(r *rules.Rule) uint64 {
	h := fnv.New64a()
	parts := []string{r.Alert, r.Signal, string(r.Stat), strings.Join(r.By, "\xfe"), r.Detector.Type(), r.Detector.String()}
	if r.Evidence != nil {
		parts = append(parts, r.Evidence.String())
	}
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0xff})
	}
	return h.Sum64()
}

// AppendDetectors appends the detector state of the hosts that keep
// selects (all hosts for nil) to dst, in a stable order.
func (e *Engine) AppendDetectors(dst []byte, keep func(cluster, host string) bool) []byte {
	start := len(dst)
	w := detWriter{b: append(dst, detectorsMagic...)}
	w.b = append(w.b, DetectorsVersion)
	hks := e.sortedHosts()
	if keep != nil {
		hks = slices.DeleteFunc(hks, func(hk hostKey) bool { return !keep(hk.cluster, hk.host) })
	}
	keys := make([]uint64, len(e.rules))
	for i, r := range e.rules {
		keys[i] = ruleKey(r)
	}
	w.uvarint(uint64(len(hks)))
	for _, hk := range hks {
		h := e.hosts[hk]
		w.str(hk.cluster)
		w.str(hk.host)
		w.u64(h.seq)
		w.time(h.start)
		w.time(h.last)
		w.i64(int64(h.interval))
		n := 0
		for i := range e.rules {
			for _, g := range h.groups[i].all() {
				if _, ok := g.det.(detect.Stater); ok {
					n++
				}
			}
		}
		w.uvarint(uint64(n))
		for i, r := range e.rules {
			for _, g := range h.groups[i].all() {
				st, ok := g.det.(detect.Stater)
				if !ok {
					continue
				}
				w.str(r.Alert)
				w.u64(keys[i])
				w.uvarint(uint64(len(g.by)))
				for _, v := range g.by {
					w.str(v)
				}
				w.u64(math.Float64bits(g.value))
				w.time(g.lastSeen)
				w.time(g.stepped)
				w.str(g.top)
				w.i64(int64(g.ev.Weight))
				w.i64(int64(g.ev.Support))
				w.i64(int64(g.ev.First))
				w.i64(int64(g.ev.Span))
				w.i64(int64(g.ev.Quiet))
				at := len(w.b)
				w.b = append(w.b, 0, 0, 0, 0) // length, filled in below
				w.b = st.AppendState(w.b)
				binary.LittleEndian.PutUint32(w.b[at:], uint32(len(w.b)-at-4))
			}
		}
	}
	return binary.LittleEndian.AppendUint32(w.b, crc32.Checksum(w.b[start:], castagnoli))
}

// LoadDetectors restores the detector state in b (see AppendDetectors)
// of the hosts that keep selects (all for nil): each host's batch mark
// when it is later than the one the engine has, and each group's
// detector, creating the group (inactive) when it does not exist. now
// stands for the hosts' last arrival (see Expire). Groups of rules that
// changed or vanished are skipped and counted. On an error (corrupt
// input) nothing is changed.
func (e *Engine) LoadDetectors(b []byte, keep func(cluster, host string) bool, now time.Time) (DetectorsLoaded, error) {
	var out DetectorsLoaded
	if len(b) < len(detectorsMagic)+1+4 || string(b[:len(detectorsMagic)]) != detectorsMagic {
		return out, fmt.Errorf("%w: no snapshot header", ErrDetectorsCorrupt)
	}
	if v := b[len(detectorsMagic)]; v != DetectorsVersion {
		return out, fmt.Errorf("%w: version %d (want %d)", ErrDetectorsCorrupt, v, DetectorsVersion)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return out, fmt.Errorf("%w: checksum mismatch", ErrDetectorsCorrupt)
	}
	// Parse everything first, so that a malformed snapshot changes nothing.
	type groupIn struct {
		rule  string
		key   uint64
		by    []string
		value float64
		seen  time.Time
		step  time.Time
		top   string
		ev    rules.EvidenceRun
		state []byte
	}
	type hostIn struct {
		hk          hostKey
		seq         uint64
		start, last time.Time
		interval    time.Duration
		groups      []groupIn
	}
	r := detReader{b: body[len(detectorsMagic)+1:]}
	nh := r.count()
	var hosts []hostIn
	for range nh {
		h := hostIn{hk: hostKey{r.str(), r.str()}, seq: r.u64(), start: r.time(), last: r.time(), interval: time.Duration(r.i64())}
		ng := r.count()
		for range ng {
			g := groupIn{rule: r.str(), key: r.u64()}
			nb := r.count()
			for range nb {
				g.by = append(g.by, r.str())
			}
			g.value = math.Float64frombits(r.u64())
			g.seen, g.step, g.top = r.time(), r.time(), r.str()
			g.ev = rules.EvidenceRun{Weight: time.Duration(r.i64()), Support: time.Duration(r.i64()),
				First: time.Duration(r.i64()), Span: time.Duration(r.i64()), Quiet: int(r.i64())}
			g.state = r.bytes(int(r.u32()))
			if r.err != nil {
				break
			}
			h.groups = append(h.groups, g)
		}
		if r.err != nil {
			break
		}
		hosts = append(hosts, h)
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return out, fmt.Errorf("%w: %v", ErrDetectorsCorrupt, r.err)
	}

	byName := make(map[string]int, len(e.rules))
	keys := make([]uint64, len(e.rules))
	for i, ru := range e.rules {
		byName[ru.Alert] = i
		keys[i] = ruleKey(ru)
	}
	for _, hin := range hosts {
		if keep != nil && !keep(hin.hk.cluster, hin.hk.host) {
			continue
		}
		h := e.hostFor(hin.hk)
		if hin.last.After(h.last) || h.last.IsZero() {
			h.seq, h.start, h.last, h.interval = hin.seq, hin.start, hin.last, hin.interval
		}
		if h.arrived.IsZero() {
			h.arrived = now
		}
		out.Hosts++
		for _, gin := range hin.groups {
			i, ok := byName[gin.rule]
			if !ok || keys[i] != gin.key || len(gin.by) != len(e.rules[i].By) {
				out.Skipped++
				continue
			}
			fresh := newGroup(e.rules[i], gin.by)
			st, ok := fresh.det.(detect.Stater)
			if !ok || st.LoadState(gin.state) != nil {
				out.Skipped++
				continue
			}
			if h.groups[i] == nil {
				h.groups[i] = newGroupSet()
			}
			g := h.groups[i].m[fresh.key]
			if g == nil {
				g = fresh
				h.groups[i].put(g)
			} else {
				g.det = fresh.det
			}
			g.value, g.top, g.ev = gin.value, gin.top, gin.ev
			if gin.seen.After(g.lastSeen) {
				g.lastSeen = gin.seen
			}
			if gin.step.After(g.stepped) {
				g.stepped = gin.step
			}
			out.Groups++
		}
	}
	return out, nil
}

// detWriter appends the fields of a detector snapshot.
type detWriter struct{ b []byte }

func (w *detWriter) u64(x uint64)     { w.b = binary.LittleEndian.AppendUint64(w.b, x) }
func (w *detWriter) i64(x int64)      { w.u64(uint64(x)) }
func (w *detWriter) uvarint(x uint64) { w.b = binary.AppendUvarint(w.b, x) }
func (w *detWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// time writes t as a flag (0: zero time) and unix nanoseconds.
func (w *detWriter) time(t time.Time) {
	if t.IsZero() {
		w.b = append(w.b, 0)
		return
	}
	w.b = append(w.b, 1)
	w.i64(t.UnixNano())
}

// detReader reads what detWriter wrote; the first problem sticks.
type detReader struct {
	b   []byte
	err error
}

func (r *detReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = errors.New("truncated")
		r.b = nil
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *detReader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *detReader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *detReader) i64() int64 { return int64(r.u64()) }

func (r *detReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return x
}

// count reads a number of items, each of which takes at least a byte.
func (r *detReader) count() int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d items in %d bytes", n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *detReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		if r.err == nil {
			r.err = errors.New("truncated string")
		}
		return ""
	}
	return string(r.bytes(int(n)))
}

func (r *detReader) time() time.Time {
	switch f := r.bytes(1); {
	case f == nil:
		return time.Time{}
	case f[0] == 0:
		return time.Time{}
	case f[0] == 1:
		return time.Unix(0, r.i64()).UTC()
	default:
		r.err = fmt.Errorf("bad time flag %d", f[0])
		return time.Time{}
	}
}
