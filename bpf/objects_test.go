package bpf

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
)

// TestObjectSpecs checks the program types of the disk and database
// objects, the shared maps every object must define alike, and the Go
// layouts of the shared records.
func TestObjectSpecs(t *testing.T) {
	type want struct {
		load  func() (*ebpf.CollectionSpec, error)
		progs map[string]ebpf.ProgramType
	}
	objs := map[string]want{
		"disk": {LoadDisk, map[string]ebpf.ProgramType{
			DiskProgBlockRqIssueBtf: ebpf.Tracing, DiskProgBlockRqCompleteBtf: ebpf.Tracing,
			DiskProgBlockRqIssueTp: ebpf.TracePoint, DiskProgBlockRqCompleteTp: ebpf.TracePoint,
		}},
		"pg": {LoadPG, map[string]ebpf.ProgramType{
			PGProgPgQueryStart: ebpf.Kprobe, PGProgPgQueryDone: ebpf.Kprobe, PGProgPgQueryParseStart: ebpf.Kprobe,
			PGProgPgQueryExecuteStart: ebpf.Kprobe, PGProgPgQueryExecuteDone: ebpf.Kprobe,
		}},
		"mysql": {LoadMySQL, map[string]ebpf.ProgramType{
			MySQLProgMysqlDispatchEnter: ebpf.Kprobe, MySQLProgMysqlDispatchReturn: ebpf.Kprobe,
		}},
	}
	tcp, err := LoadTCP()
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range objs {
		spec, err := w.load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for p, typ := range w.progs {
			ps, ok := spec.Programs[p]
			if !ok || ps.Type != typ {
				t.Errorf("%s: program %s: %+v", name, p, ps)
			}
		}
		// Shared maps must match the TCP object's, which creates them.
		for _, m := range []string{TCPMapAggregates, TCPMapEvents, TCPMapEventsDropped} {
			a, b := tcp.Maps[m], spec.Maps[m]
			if name == "disk" && m != TCPMapAggregates {
				continue
			}
			if b == nil || a.Type != b.Type || a.KeySize != b.KeySize || a.ValueSize != b.ValueSize || a.MaxEntries != b.MaxEntries {
				t.Errorf("%s: shared map %s differs: %+v vs %+v", name, m, a, b)
			}
		}
	}
	if got, want := binary.Size(TCPAggKey{}), int(tcp.Maps[TCPMapAggregates].KeySize); got != want {
		t.Errorf("TCPAggKey is %d bytes, the map key %d", got, want)
	}
	if got := binary.Size(PGQueryEvent{}); got != 32+256 {
		t.Errorf("PGQueryEvent is %d bytes", got)
	}
}
