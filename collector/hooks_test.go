package collector

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf/btf"
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
