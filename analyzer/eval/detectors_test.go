package eval

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

const baselineRules = `groups:
  - name: network
    rules:
      - alert: RetransEWMA
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host, peer]
        detector: {type: ewma, warmup: 60s, threshold: 5}
        for: 0s
      - alert: RetransAuto
        signal: tcp_retransmits_total
        stat: rate
        by: [cluster, host]
        detector: {type: auto, warmup: 60s}
        for: 0s
`

// noisyBatches are n batches of host h from seq from: two peers' rates
// around 100 and 50, with a jump of both at the seqs in jump.
func noisyBatches(h string, from, n int, seed uint64, jump ...int) []*wire.Batch {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []*wire.Batch
	for seq := from; seq < from+n; seq++ {
		a, b := 100+2*rng.NormFloat64(), 50+rng.NormFloat64()
		if slices.Contains(jump, seq) {
			a, b = a+60, b+30
		}
		out = append(out, batch(h, seq, retrans(a, "p1"), retrans(b, "p2")))
	}
	return out
}

// TestDetectorsRoundTrip: an engine given another's detector state of one
// host judges that host's next batches exactly as the other does (same
// announcements, same state after), while an engine without it does not
// fire on the first anomalous batch.
func TestDetectorsRoundTrip(t *testing.T) {
	set := mustRules(t, baselineRules)
	a := New(set, Options{})
	feed(t, a, noisyBatches("h1", 0, 300, 1)...)
	feed(t, a, noisyBatches("h2", 0, 300, 2)...)
	only := func(h string) func(string, string) bool { return func(_, host string) bool { return host == h } }
	snap := a.AppendDetectors(nil, only("h1"))

	b := New(set, Options{})
	got, err := b.LoadDetectors(snap, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got != (DetectorsLoaded{Hosts: 1, Groups: 3}) || b.Hosts() != 1 {
		t.Fatalf("loaded %+v, %d hosts", got, b.Hosts())
	}
	next := noisyBatches("h1", 300, 40, 3, 305, 306, 307)
	fresh := New(set, Options{})
	wantA := feed(t, a, next...)
	if !slices.Contains(wantA, "305:firing:h1") {
		t.Fatalf("the original engine does not fire on the jump: %v", wantA)
	}
	if gotB := feed(t, b, next...); !slices.Equal(gotB, wantA) {
		t.Fatalf("restored engine: %v, original: %v", gotB, wantA)
	}
	if gotF := feed(t, fresh, next...); slices.Contains(gotF, "305:firing:h1") {
		t.Fatalf("a fresh engine fires on the jump too (%v): the test proves nothing", gotF)
	}
	if x, y := a.AppendDetectors(nil, only("h1")), b.AppendDetectors(nil, nil); string(x) != string(y) {
		t.Fatal("the engines' detector states differ after the same batches")
	}
	// A restored host does not evaluate a batch it already evaluated.
	c := New(set, Options{})
	if _, err := c.LoadDetectors(snap, nil, t0); err != nil {
		t.Fatal(err)
	}
	if rep, _ := c.Eval(noisyBatches("h1", 299, 1, 9)[0], t0); rep.Ignored != IgnoredDuplicate {
		t.Fatalf("batch 299 after restore: %+v", rep)
	}
}

// TestDetectorsChangedRulesSkipped: groups of a rule that changed or
// vanished are skipped and counted; the others are restored.
func TestDetectorsChangedRulesSkipped(t *testing.T) {
	a := New(mustRules(t, baselineRules), Options{})
	feed(t, a, noisyBatches("h1", 0, 100, 1)...)
	snap := a.AppendDetectors(nil, nil)

	changed := strings.Replace(baselineRules, "threshold: 5", "threshold: 6", 1)
	b := New(mustRules(t, changed), Options{})
	got, err := b.LoadDetectors(snap, nil, t0)
	if err != nil || got != (DetectorsLoaded{Hosts: 1, Groups: 1, Skipped: 2}) {
		t.Fatalf("changed ewma rule: %+v, %v", got, err)
	}
	vanished := baselineRules[:strings.Index(baselineRules, "      - alert: RetransAuto")]
	c := New(mustRules(t, vanished), Options{})
	got, err = c.LoadDetectors(snap, nil, t0)
	if err != nil || got != (DetectorsLoaded{Hosts: 1, Groups: 2, Skipped: 1}) {
		t.Fatalf("vanished auto rule: %+v, %v", got, err)
	}
	// Another rule with the same name and detector but other labels.
	relabelled := strings.Replace(baselineRules, "by: [cluster, host, peer]", "by: [cluster, host, device]", 1)
	d := New(mustRules(t, relabelled), Options{})
	got, err = d.LoadDetectors(snap, nil, t0)
	if err != nil || got.Skipped != 2 {
		t.Fatalf("relabelled rule: %+v, %v", got, err)
	}
}

func TestDetectorsCorruptInputChangesNothing(t *testing.T) {
	set := mustRules(t, baselineRules)
	a := New(set, Options{})
	feed(t, a, noisyBatches("h1", 0, 100, 1)...)
	snap := a.AppendDetectors(nil, nil)
	for i := range snap {
		b := slices.Clone(snap)
		b[i] ^= 0x41
		e := New(set, Options{})
		if _, err := e.LoadDetectors(b, nil, t0); !errors.Is(err, ErrDetectorsCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
		if e.Hosts() != 0 {
			t.Fatalf("byte %d flipped: a failed load added hosts", i)
		}
	}
	for n := 0; n < len(snap); n += 7 {
		if _, err := New(set, Options{}).LoadDetectors(snap[:n], nil, t0); !errors.Is(err, ErrDetectorsCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

// fuzzSnapshot is the fuzz targets' seed: the rules and the snapshot of
// an engine that evaluated 100 batches of one host.
func fuzzSnapshot(f *testing.F) (*rules.Set, []byte) {
	groups, err := rules.Parse("test.yaml", []byte(baselineRules))
	if err != nil {
		f.Fatal(err)
	}
	set := &rules.Set{Groups: groups}
	a := New(set, Options{})
	for _, b := range noisyBatches("h1", 0, 100, 1) {
		if _, err := a.Eval(b, t0); err != nil {
			f.Fatal(err)
		}
	}
	return set, a.AppendDetectors(nil, nil)
}

// FuzzLoadDetectors: no input panics a load or the evaluation after it.
func FuzzLoadDetectors(f *testing.F) {
	set, snap := fuzzSnapshot(f)
	f.Add(snap)
	f.Fuzz(func(t *testing.T, b []byte) {
		e := New(set, Options{})
		if _, err := e.LoadDetectors(b, nil, t0); err != nil {
			return
		}
		for _, b := range noisyBatches("h1", 100, 20, 2) {
			_, _ = e.Eval(b, t0)
		}
	})
}

// BenchmarkAppendDetectors: the snapshot of 1000 hosts, each with two
// EWMA groups and one auto group, and its load.
func BenchmarkAppendDetectors(b *testing.B) {
	groups, err := rules.Parse("test.yaml", []byte(baselineRules))
	if err != nil {
		b.Fatal(err)
	}
	set := &rules.Set{Groups: groups}
	e := New(set, Options{})
	for h := range 1000 {
		for _, bt := range noisyBatches(fmt.Sprintf("h%d", h), 0, 20, uint64(h)) {
			if _, err := e.Eval(bt, t0); err != nil {
				b.Fatal(err)
			}
		}
	}
	buf := e.AppendDetectors(nil, nil)
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			buf = e.AppendDetectors(buf[:0], nil)
		}
		b.ReportMetric(float64(len(buf)), "snapshot-bytes")
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			if _, err := New(set, Options{}).LoadDetectors(buf, nil, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzLoadDetectorsResealed flips bytes of a valid snapshot and reseals
// its checksum, so that the fuzzer reaches the parser and the detectors'
// own checks.
func FuzzLoadDetectorsResealed(f *testing.F) {
	set, snap := fuzzSnapshot(f)
	f.Add(uint16(40), uint8(1), uint16(300), uint8(0x80))
	f.Fuzz(func(t *testing.T, at1 uint16, x1 uint8, at2 uint16, x2 uint8) {
		body := slices.Clone(snap[:len(snap)-4])
		body[int(at1)%len(body)] ^= x1
		body[int(at2)%len(body)] ^= x2
		b := binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
		e := New(set, Options{})
		if _, err := e.LoadDetectors(b, nil, t0); err != nil {
			if e.Hosts() != 0 {
				t.Fatal("a failed load added hosts")
			}
			return
		}
		for _, b := range noisyBatches("h1", 100, 20, 2) {
			_, _ = e.Eval(b, t0)
		}
	})
}
