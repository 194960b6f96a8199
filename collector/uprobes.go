package collector

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// serverBinary is one database server executable.
type serverBinary struct {
	id   fileID
	path string // a path that opens it from here, e.g. /proc/PID/exe
}

// binarySet collects server binaries, each inode once.
type binarySet struct {
	seen map[fileID]bool
	list []serverBinary
}

// add adds the binary at path unless it is gone or already in the set.
func (s *binarySet) add(path string) {
	id, err := idOf(path)
	if err != nil || s.seen[id] {
		return
	}
	if s.seen == nil {
		s.seen = make(map[fileID]bool)
	}
	s.seen[id] = true
	s.list = append(s.list, serverBinary{id: id, path: path})
}

// eachProcess calls fn for every process under procRoot whose command
// name is one of comms, with its pid, /proc directory and parent pid.
func eachProcess(procRoot string, comms []string, fn func(pid int, dir string, ppid int)) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		comm, ppid, err := procStat(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		for _, c := range comms {
			if comm == c {
				fn(pid, dir, ppid)
				break
			}
		}
	}
}

// binaryAttacher is what the database attachers share: the loaded
// programs, each server binary attached once (a uprobe covers every
// process running it), why a binary could not be, the hook rows, and
// detaching.
type binaryAttacher struct {
	mu      sync.Mutex
	progs   []*ebpf.Program
	loadErr error
	// attachBinary attaches the programs to one binary; called with mu held.
	attachBinary func(path string) ([]link.Link, error)
	// rows are the hooks reported, without their state.
	rows []HookStatus
	// rowErr, when set, is a row's own last error ("" for none).
	rowErr func(row int) string
	// notFound is the row error when no binary was seen yet.
	notFound string

	attached map[fileID][]link.Link
	failed   map[fileID]string
}

func newBinaryAttacher(rows []HookStatus, notFound string) binaryAttacher {
	return binaryAttacher{rows: rows, notFound: notFound,
		attached: make(map[fileID][]link.Link), failed: make(map[fileID]string)}
}

// load loads the named programs of p, stopping at the first error.
func (a *binaryAttacher) load(p *probes, names ...string) []*ebpf.Program {
	out := make([]*ebpf.Program, 0, len(names))
	for _, n := range names {
		prog, err := p.loadProgram(n)
		if err != nil {
			a.loadErr = err
			return out
		}
		a.progs = append(a.progs, prog)
		out = append(out, prog)
	}
	return out
}

// attach attaches to bin unless done or failed already; it reports
// whether it attached now.
func (a *binaryAttacher) attach(bin serverBinary) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.attached[bin.id]; ok {
		return false, nil
	}
	if _, ok := a.failed[bin.id]; ok {
		return false, nil
	}
	if a.loadErr != nil {
		a.failed[bin.id] = a.loadErr.Error()
		return false, a.loadErr
	}
	links, err := a.attachBinary(bin.path)
	if err != nil {
		a.failed[bin.id] = err.Error()
		return false, err
	}
	a.attached[bin.id] = links
	return true, nil
}

// statuses reports one row per hook: attached if attached to at least one
// binary, else why not.
func (a *binaryAttacher) statuses() []HookStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	rows := append([]HookStatus(nil), a.rows...)
	for i := range rows {
		rows[i].Attached = len(a.attached) > 0
		if rows[i].Attached {
			continue
		}
		switch {
		case a.loadErr != nil:
			rows[i].Error = explain(rows[i].Type, a.loadErr)
		case a.rowErr != nil && a.rowErr(i) != "":
			rows[i].Error = a.rowErr(i)
		case len(a.failed) > 0:
			for _, e := range a.failed {
				rows[i].Error = e
				break
			}
		default:
			rows[i].Error = a.notFound
		}
	}
	return rows
}

// close detaches from every binary and unloads the programs.
func (a *binaryAttacher) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ls := range a.attached {
		for _, l := range ls {
			l.Close()
		}
	}
	for _, p := range a.progs {
		p.Close()
	}
	a.attached, a.progs = nil, nil
}
