package collector

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/mciv/mciv/bpf"
	"github.com/mciv/mciv/internal/lab/testenv"
)

func TestCheckBlockRqIssue(t *testing.T) {
	request := &btf.Pointer{Target: &btf.Struct{Name: "request"}}
	void := &btf.Pointer{Target: &btf.Void{}}
	mk := func(params ...btf.Type) *btf.Spec {
		var ps []btf.FuncParam
		for _, p := range params {
			ps = append(ps, btf.FuncParam{Type: p})
		}
		b, err := btf.NewBuilder([]btf.Type{&btf.Typedef{Name: "btf_trace_block_rq_issue", Type: &btf.Pointer{Target: &btf.FuncProto{Return: &btf.Void{}, Params: ps}}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := b.Marshal(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := btf.LoadSpecFromReader(bytesReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	if err := checkBlockRqIssue(mk(void, request)); err != nil {
		t.Errorf("single argument: %v", err)
	}
	if err := checkBlockRqIssue(mk(void, &btf.Pointer{Target: &btf.Struct{Name: "request_queue"}}, request)); !errors.Is(err, errOldBlockRqIssue) {
		t.Errorf("two arguments: %v", err)
	}
}

// TestProbesPauseResume attaches a real hook, and counts the kernel's links
// to its program while paused and after resuming.
func TestProbesPauseResume(t *testing.T) {
	testenv.RequireRoot(t)
	if err := MountTracefs(); err != nil {
		testenv.Missing(t, err.Error())
	}
	spec, err := bpf.LoadTCP()
	if err != nil {
		t.Fatal(err)
	}
	p, err := openProbes(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	var hook hookSpec
	for _, h := range tcpHooks() {
		if h.name == "inet_sock_set_state" {
			hook = h
		}
	}
	rows := p.attachFirst(hook)
	if len(rows) == 0 || !rows[len(rows)-1].Attached {
		t.Fatalf("not attached: %+v", rows)
	}
	info, err := p.progs[0].Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	links := func() int {
		t.Helper()
		n := 0
		it := new(link.Iterator)
		defer it.Close()
		for it.Next() {
			if li, err := it.Link.Info(); err == nil && li.Program == id {
				n++
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := links(); n != 1 {
		t.Fatalf("%d links to the program after attaching, want 1", n)
	}
	p.pause()
	if n := links(); n != 0 {
		t.Fatalf("%d links while paused, want 0", n)
	}
	if err := p.resume(); err != nil {
		t.Fatal(err)
	}
	if err := p.resume(); err != nil { // nothing paused: a no-op
		t.Fatal(err)
	}
	if n := links(); n != 1 {
		t.Fatalf("%d links after resuming, want 1", n)
	}
}
