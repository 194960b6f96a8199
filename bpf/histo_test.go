package bpf

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/mciv/mciv/internal/histo"
	"github.com/mciv/mciv/internal/lab/testenv"
)

// histoTestValues are the values the kernel's histo_index is checked on:
// every value below 2^14, both sides of every power of two and of every
// sub-bucket boundary above, and random values of every magnitude.
func histoTestValues() []uint64 {
	var vs []uint64
	for v := uint64(0); v < 1<<14; v++ {
		vs = append(vs, v)
	}
	for m := 6; m < 64; m++ {
		for s := uint64(0); s < 64; s++ {
			b := uint64(1)<<m + s<<(m-6)
			vs = append(vs, b-1, b, b+1)
		}
	}
	vs = append(vs, ^uint64(0), ^uint64(0)-1)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		vs = append(vs, r.Uint64()>>r.IntN(64))
	}
	return vs
}

// TestHistoIndexMatchesGo runs the C histo_index (headers/mciv_histo.h) in
// the kernel with BPF_PROG_TEST_RUN and compares every result with
// histo.Index.
func TestHistoIndexMatchesGo(t *testing.T) {
	testenv.RequireRoot(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	var objs HistoTestObjects
	if err := LoadHistoTestObjects(&objs, nil); err != nil {
		t.Fatalf("load: %v", err)
	}
	defer objs.Close()
	ctx := make([]byte, 8)
	mismatches := 0
	vs := histoTestValues()
	for _, v := range vs {
		binary.NativeEndian.PutUint64(ctx, v)
		got, err := objs.HistoIndexOf.Run(&ebpf.RunOptions{Context: ctx})
		if err != nil {
			t.Fatalf("test run of %d: %v", v, err)
		}
		if want := histo.Index(v); int32(got) != want {
			mismatches++
			if mismatches < 10 {
				t.Errorf("histo_index(%d) = %d, histo.Index = %d", v, int32(got), want)
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d values bucketed differently", mismatches, len(vs))
	}
	t.Logf("%d values bucketed identically", len(vs))
}
