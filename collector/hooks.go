package collector

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mciv/mciv/bpf"
)

// HookStatus says whether a program is attached to one kernel hook, how,
// or why not.
type HookStatus struct {
	// Name is the kernel hook, e.g. "tcp_retransmit_skb".
	Name string `json:"name"`
	// Attached is true if a program is attached to the hook this way.
	Attached bool `json:"attached"`
	// Type is the way of attaching: "tp_btf", "tracepoint", "fentry",
	// "kprobe", ...
	Type string `json:"type"`
	// Error says why this way did not work.
	Error string `json:"error,omitempty"`
}

// Ways of attaching a program to a kernel hook.
const (
	HookTypeTPBTF      = "tp_btf"
	HookTypeTracepoint = "tracepoint"
	HookTypeFentry     = "fentry"
	HookTypeKprobe     = "kprobe"
)

// hookSpec is one kernel hook and the programs that can observe it, in
// order of preference. The collector attaches the first that the kernel
// accepts and never more than one, which would count twice.
type hookSpec struct {
	name string
	// kfunc is the kernel function behind the hook, for the fentry and
	// kprobe rows of `mciv doctor` ("" for none).
	kfunc string
	ways  []attachWay
}

// attachWay is one program of an object and how to attach it.
type attachWay struct {
	typ     string
	program string
	attach  func(*ebpf.Program) (link.Link, error)
}

// tcpHooks are the hooks of the TCP object (bpf/tcp.bpf.c).
func tcpHooks() []hookSpec {
	return []hookSpec{{
		name:  "tcp_retransmit_skb",
		kfunc: "tcp_retransmit_skb",
		ways: []attachWay{
			{typ: HookTypeTPBTF, program: bpf.TCPProgTcpRetransmitSkbBtf, attach: attachTracing},
			{typ: HookTypeTracepoint, program: bpf.TCPProgTcpRetransmitSkbTp, attach: attachTracepoint("tcp", "tcp_retransmit_skb")},
		},
	}}
}

func attachTracing(p *ebpf.Program) (link.Link, error) {
	return link.AttachTracing(link.TracingOptions{Program: p})
}

func attachTracepoint(group, name string) func(*ebpf.Program) (link.Link, error) {
	return func(p *ebpf.Program) (link.Link, error) {
		return link.Tracepoint(group, name, p, nil)
	}
}

// probes are the kernel objects of one collector run (or one doctor
// check): the shared maps, and the programs and links attached so far.
type probes struct {
	spec  *ebpf.CollectionSpec
	cache *btf.Cache
	maps  map[string]*ebpf.Map
	progs []*ebpf.Program
	links []link.Link
}

// openProbes creates every map of spec. Programs are loaded one by one
// later, so that a program the kernel rejects costs only its own hook.
func openProbes(spec *ebpf.CollectionSpec) (*probes, error) {
	p := &probes{spec: spec, cache: btf.NewCache(), maps: make(map[string]*ebpf.Map)}
	for name, ms := range spec.Maps {
		m, err := ebpf.NewMap(ms)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("create map %s: %w", name, err)
		}
		p.maps[name] = m
	}
	return p, nil
}

// loadProgram loads one program of the spec, using the shared maps.
func (p *probes) loadProgram(name string) (*ebpf.Program, error) {
	ps, ok := p.spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("program %s not in the object", name)
	}
	one := p.spec.Copy()
	one.Programs = map[string]*ebpf.ProgramSpec{name: ps.Copy()}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{
		MapReplacements: p.maps,
		Cache:           p.cache,
	})
	if err != nil {
		return nil, err
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

// try loads and attaches the program of one way. On success the program
// and link belong to p.
func (p *probes) try(w attachWay) error {
	prog, err := p.loadProgram(w.program)
	if err != nil {
		return err
	}
	l, err := w.attach(prog)
	if err != nil {
		prog.Close()
		return err
	}
	p.progs = append(p.progs, prog)
	p.links = append(p.links, l)
	return nil
}

// attachFirst attaches the first way of h that works and returns one row
// per way tried: the failures, then the success if any.
func (p *probes) attachFirst(h hookSpec) []HookStatus {
	var rows []HookStatus
	for _, w := range h.ways {
		err := p.try(w)
		if err == nil {
			return append(rows, HookStatus{Name: h.name, Type: w.typ, Attached: true})
		}
		rows = append(rows, HookStatus{Name: h.name, Type: w.typ, Error: explain(w.typ, err)})
	}
	return rows
}

// detachAll closes every link and program, keeping the maps.
func (p *probes) detachAll() {
	for _, l := range p.links {
		l.Close()
	}
	for _, prog := range p.progs {
		prog.Close()
	}
	p.links, p.progs = nil, nil
}

// close detaches everything and closes the maps.
func (p *probes) close() {
	p.detachAll()
	for _, m := range p.maps {
		m.Close()
	}
	p.maps = nil
}

// explain turns an attach error into a short reason with a hint.
func explain(typ string, err error) string {
	switch {
	case errors.Is(err, unix.EPERM):
		// cilium/ebpf suggests raising RLIMIT_MEMLOCK on any EPERM; the
		// collector has removed that limit already, so drop the hint.
		msg := strings.Replace(err.Error(), " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)", "", 1)
		return fmt.Sprintf("%s refused: operation not permitted (kernel lockdown, or no CAP_BPF/CAP_PERFMON?): %s", typ, msg)
	case isVerifierError(err):
		return fmt.Sprintf("%s rejected by the verifier: %v", typ, err)
	case errors.Is(err, unix.EACCES):
		return fmt.Sprintf("%s refused: permission denied: %v", typ, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Sprintf("%s not supported by this kernel: %v", typ, err)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("%s not found in this kernel: %v", typ, err)
	}
	return fmt.Sprintf("%s failed: %v", typ, err)
}

func isVerifierError(err error) bool {
	var ve *ebpf.VerifierError
	return errors.As(err, &ve)
}
