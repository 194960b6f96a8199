package bpf

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/mciv/mciv/internal/lab/testenv"
)

func TestTCPSpec(t *testing.T) {
	spec, err := LoadTCP()
	if err != nil {
		t.Fatal(err)
	}
	progs := map[string]ebpf.ProgramType{
		TCPProgTcpRetransmitSkbBtf: ebpf.Tracing,
		TCPProgTcpRetransmitSkbTp:  ebpf.TracePoint,
	}
	for name, typ := range progs {
		p, ok := spec.Programs[name]
		if !ok {
			t.Fatalf("program %s missing", name)
		}
		if p.Type != typ {
			t.Errorf("program %s: type %s, want %s", name, p.Type, typ)
		}
		if p.AttachTo == "" {
			t.Errorf("program %s: no attach target", name)
		}
	}
	maps := map[string]ebpf.MapType{
		TCPMapTcpRetransmits: ebpf.LRUHash,
		TCPMapEvents:         ebpf.RingBuf,
		TCPMapEventsDropped:  ebpf.PerCPUArray,
	}
	for name, typ := range maps {
		m, ok := spec.Maps[name]
		if !ok {
			t.Fatalf("map %s missing", name)
		}
		if m.Type != typ {
			t.Errorf("map %s: type %s, want %s", name, m.Type, typ)
		}
	}
	m := spec.Maps[TCPMapTcpRetransmits]
	if got := binary.Size(TCPRetransKey{}); uint32(got) != m.KeySize {
		t.Errorf("TCPRetransKey is %d bytes, the map key %d", got, m.KeySize)
	}
	if m.ValueSize != 8 || m.MaxEntries == 0 {
		t.Errorf("retransmit map: value %d bytes, %d entries", m.ValueSize, m.MaxEntries)
	}
}

// TestSockEventLayout checks the Go record type against the C struct's BTF.
func TestSockEventLayout(t *testing.T) {
	spec, err := LoadTCP()
	if err != nil {
		t.Fatal(err)
	}
	var ev *btf.Struct
	if err := spec.Types.TypeByName("sock_event", &ev); err != nil {
		t.Fatal(err)
	}
	if got := binary.Size(TCPSockEvent{}); uint32(got) != ev.Size {
		t.Fatalf("TCPSockEvent is %d bytes, struct sock_event %d", got, ev.Size)
	}
	if ev.Members[0].Name != "kind" || ev.Members[0].Offset != 0 {
		t.Fatalf("struct sock_event must start with its kind, starts with %s", ev.Members[0].Name)
	}
}

// TestTCPProgramsLoad runs every program through this kernel's verifier.
func TestTCPProgramsLoad(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireFile(t, "/sys/kernel/btf/vmlinux", "the kernel's BTF, for CO-RE")
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadTCP()
	if err != nil {
		t.Fatal(err)
	}
	for name := range spec.Programs {
		t.Run(name, func(t *testing.T) {
			s := spec.Copy()
			s.Programs = map[string]*ebpf.ProgramSpec{name: s.Programs[name]}
			coll, err := ebpf.NewCollection(s)
			if err != nil {
				var ve *ebpf.VerifierError
				if errors.As(err, &ve) {
					t.Fatalf("%+v", ve)
				}
				t.Fatal(err)
			}
			coll.Close()
		})
	}
}
