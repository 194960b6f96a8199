package collector

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

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
	// Note says more about a way that works: for a query latency row,
	// why a server is not measured through its packets.
	Note string `json:"note,omitempty"`
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
	}, {
		// Only the classic record decodes resets sent without a socket.
		name:  "tcp_send_reset",
		kfunc: "tcp_v4_send_reset",
		ways: []attachWay{
			{typ: HookTypeTracepoint, program: bpf.TCPProgTcpSendResetTp, attach: attachTracepoint("tcp", "tcp_send_reset")},
		},
	}, {
		name:  "tcp_receive_reset",
		kfunc: "tcp_reset",
		ways: []attachWay{
			{typ: HookTypeTPBTF, program: bpf.TCPProgTcpReceiveResetBtf, attach: attachTracing},
			{typ: HookTypeTracepoint, program: bpf.TCPProgTcpReceiveResetTp, attach: attachTracepoint("tcp", "tcp_receive_reset")},
		},
	}, {
		name:  "inet_sock_set_state",
		kfunc: "inet_sk_state_store",
		ways: []attachWay{
			{typ: HookTypeTPBTF, program: bpf.TCPProgInetSockSetStateBtf, attach: attachTracing},
			{typ: HookTypeTracepoint, program: bpf.TCPProgInetSockSetStateTp, attach: attachTracepoint("sock", "inet_sock_set_state")},
		},
	}, {
		name:  "tcp_probe",
		kfunc: "tcp_rcv_established",
		ways: []attachWay{
			{typ: HookTypeTPBTF, program: bpf.TCPProgTcpProbeBtf, attach: attachTracing},
			{typ: HookTypeTracepoint, program: bpf.TCPProgTcpProbeTp, attach: attachTracepoint("tcp", "tcp_probe")},
		},
	}}
}

// diskHooks are the hooks of the disk object (bpf/disk.bpf.c). Issue and
// completion are attached the same way, so each way attaches a pair.
func diskHooks() []hookSpec {
	return []hookSpec{{
		name:  "block_rq_issue",
		kfunc: "blk_mq_start_request",
		ways: []attachWay{
			{typ: HookTypeTPBTF, program: bpf.DiskProgBlockRqIssueBtf, attach: attachTracingIf(blockRqIssueSingleArg)},
			{typ: HookTypeTracepoint, program: bpf.DiskProgBlockRqIssueTp, attach: attachTracepoint("block", "block_rq_issue")},
		},
	}, {
		name:  "block_rq_complete",
		kfunc: "blk_mq_end_request",
		ways: []attachWay{
			// Same condition as block_rq_issue: both ends of a request
			// must be keyed alike.
			{typ: HookTypeTPBTF, program: bpf.DiskProgBlockRqCompleteBtf, attach: attachTracingIf(blockRqIssueSingleArg)},
			{typ: HookTypeTracepoint, program: bpf.DiskProgBlockRqCompleteTp, attach: attachTracepoint("block", "block_rq_complete")},
		},
	}}
}

func attachTracing(p *ebpf.Program) (link.Link, error) {
	return link.AttachTracing(link.TracingOptions{Program: p})
}

// attachTracingIf attaches a tracing program if check finds the kernel
// suitable.
func attachTracingIf(check func() error) func(*ebpf.Program) (link.Link, error) {
	return func(p *ebpf.Program) (link.Link, error) {
		if err := check(); err != nil {
			return nil, err
		}
		return attachTracing(p)
	}
}

// errOldBlockRqIssue: the kernel's block_rq_issue passes (q, rq).
var errOldBlockRqIssue = errors.New("block_rq_issue takes (q, rq) on this kernel (before Linux 5.11), the tp_btf programs expect (rq): using the classic tracepoints")

// blockRqIssueSingleArg checks that the kernel's block_rq_issue
// tracepoint takes the request as its only argument (Linux 5.11 and
// later), as bpf/disk.bpf.c's tp_btf programs expect.
func blockRqIssueSingleArg() error {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("kernel BTF: %w", err)
	}
	return checkBlockRqIssue(spec)
}

func checkBlockRqIssue(spec *btf.Spec) error {
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_block_rq_issue", &td); err != nil {
		return fmt.Errorf("block_rq_issue in kernel BTF: %w", err)
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return fmt.Errorf("btf_trace_block_rq_issue is a %T", td.Type)
	}
	fp, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return fmt.Errorf("btf_trace_block_rq_issue points to a %T", ptr.Target)
	}
	// The first parameter is the tracepoint's data pointer.
	if len(fp.Params) != 2 {
		return errOldBlockRqIssue
	}
	return nil
}

func attachTracepoint(group, name string) func(*ebpf.Program) (link.Link, error) {
	return func(p *ebpf.Program) (link.Link, error) {
		return link.Tracepoint(group, name, p, nil)
	}
}

// object is one eBPF object (one bpf/*.bpf.c) and its hooks.
type object struct {
	name  string
	load  func() (*ebpf.CollectionSpec, error)
	hooks func() []hookSpec
}

// objects are the eBPF objects the collector loads, in order. Their maps
// of the same name (events, events_dropped, aggregates) are created once
// and shared.
func objects() []object {
	return []object{
		{name: "tcp", load: bpf.LoadTCP, hooks: tcpHooks},
		{name: "disk", load: bpf.LoadDisk, hooks: diskHooks},
	}
}

// probes are the kernel objects of one collector run (or one doctor
// check): the shared maps, and the programs and links attached so far.
type probes struct {
	cache *btf.Cache
	maps  map[string]*ebpf.Map
	specs map[string]*ebpf.CollectionSpec // by program name
	// progs[i] is attached by links[i], made by ways[i]; links[i] is nil
	// while paused.
	mu    sync.Mutex
	progs []*ebpf.Program
	links []link.Link
	ways  []attachWay
	// parked are the programs (by name) kept detached until a server
	// needs them; paused: every hook is detached (pause).
	parked map[string]bool
	paused bool
}

func newProbes() *probes {
	return &probes{cache: btf.NewCache(), maps: make(map[string]*ebpf.Map), specs: make(map[string]*ebpf.CollectionSpec), parked: make(map[string]bool)}
}

// openProbes creates every map of spec. Programs are loaded one by one
// later, so that a program the kernel rejects costs only its own hook.
func openProbes(spec *ebpf.CollectionSpec) (*probes, error) {
	p := newProbes()
	if err := p.add(spec); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// add creates the maps of spec that no earlier object created, and makes
// its programs loadable.
func (p *probes) add(spec *ebpf.CollectionSpec) error {
	for name, ms := range spec.Maps {
		if _, ok := p.maps[name]; ok || strings.HasPrefix(name, ".") {
			// Data sections (.rodata, .bss) belong to each program
			// load: the loader creates and freezes them.
			continue
		}
		m, err := ebpf.NewMap(ms)
		if err != nil {
			return fmt.Errorf("create map %s: %w", name, err)
		}
		p.maps[name] = m
	}
	for name := range spec.Programs {
		p.specs[name] = spec
	}
	return nil
}

// loadProgram loads one program of the spec, using the shared maps.
func (p *probes) loadProgram(name string) (*ebpf.Program, error) {
	spec, ok := p.specs[name]
	if !ok {
		return nil, fmt.Errorf("program %s not in the object", name)
	}
	one := spec.Copy()
	one.Programs = map[string]*ebpf.ProgramSpec{name: spec.Programs[name].Copy()}
	repl := make(map[string]*ebpf.Map, len(spec.Maps))
	for n := range spec.Maps {
		if m, ok := p.maps[n]; ok {
			repl[n] = m
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{
		MapReplacements: repl,
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused || p.parked[w.program] {
		l.Close()
		l = nil
	}
	p.progs = append(p.progs, prog)
	p.links = append(p.links, l)
	p.ways = append(p.ways, w)
	return nil
}

// park detaches the named programs and keeps them detached (on), or
// attaches them again (off, unless paused). Their hooks cost nothing while
// parked: the collector parks the socket tracepoints while no server
// needs them.
func (p *probes) park(on bool, programs ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, name := range programs {
		p.parked[name] = on
	}
	for i, w := range p.ways {
		if p.parked[w.program] != on || !slices.Contains(programs, w.program) {
			continue
		}
		switch {
		case on && p.links[i] != nil:
			p.links[i].Close()
			p.links[i] = nil
		case !on && p.links[i] == nil && !p.paused:
			l, err := w.attach(p.progs[i])
			if err != nil {
				errs = append(errs, fmt.Errorf("attach %s again: %w", w.program, err))
				continue
			}
			p.links[i] = l
		}
	}
	return errors.Join(errs...)
}

// isParked reports whether the named program is parked.
func (p *probes) isParked(program string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parked[program]
}

// pause detaches every hook and keeps the programs and maps, so that the
// hooks cost nothing until resume. The overhead benchmark uses it to
// measure with and without the hooks inside one workload run.
func (p *probes) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for i, l := range p.links {
		if l != nil {
			l.Close()
			p.links[i] = nil
		}
	}
}

// resume attaches again, the same way, every hook that pause detached.
func (p *probes) resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	var errs []error
	for i, l := range p.links {
		if l != nil || p.parked[p.ways[i].program] {
			continue
		}
		l, err := p.ways[i].attach(p.progs[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("attach %s again: %w", p.ways[i].program, err))
			continue
		}
		p.links[i] = l
	}
	return errors.Join(errs...)
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
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		if l != nil {
			l.Close()
		}
	}
	for _, prog := range p.progs {
		prog.Close()
	}
	p.links, p.progs, p.ways = nil, nil, nil
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
