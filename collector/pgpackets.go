package collector

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mciv/mciv/bpf"
)

// HookTypeCgroupSKB is a cgroup_skb program on a cgroup's ingress or
// egress: it sees only the packets of that cgroup's sockets.
const HookTypeCgroupSKB = "cgroup_skb"

// Query latency paths of one PostgreSQL server, as `mciv doctor` and
// Collector.Hooks name them.
const (
	// QueryPathPackets: the server's packets, by cgroup_skb programs on
	// its cgroup (bpf/dbsock.bpf.c, part 3).
	QueryPathPackets = "packets"
	// QueryPathSocketTracepoints: the socket tracepoints, which fire for
	// every socket of the host.
	QueryPathSocketTracepoints = "socket tracepoints"
	// QueryPathUSDT: the server's USDT probes.
	QueryPathUSDT = "usdt"
)

// queryPathHook is the HookStatus name of a server's query latency path.
func queryPathHook(instance string) string { return "query_latency " + instance }

// queryPathRow is the HookStatus row saying how instance's query latency
// is measured, and, in note, why not through its packets.
func queryPathRow(instance, path, note string) HookStatus {
	return HookStatus{Name: queryPathHook(instance), Type: path, Attached: true, Note: note}
}

// cgroupV2Of returns pid's cgroup in the unified hierarchy (as
// /proc/PID/cgroup says it, "/" the root), "" if it has none.
func cgroupV2Of(procRoot string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest
		}
	}
	return ""
}

// errRootCgroup: a server in the root cgroup shares it with every process:
// programs there would see every packet of the host.
var errRootCgroup = errors.New("the server runs in the root cgroup v2 (packet programs there would see every socket of the host; run it in a cgroup of its own, as systemd does)")

// packetCgroup returns the directory of pid's cgroup v2 under the mount
// point v2root, or why its packets cannot be watched alone.
func packetCgroup(procRoot, v2root string, pid int) (string, error) {
	if v2root == "" {
		return "", errors.New("no cgroup v2 hierarchy mounted")
	}
	cg := cgroupV2Of(procRoot, pid)
	switch cg {
	case "":
		return "", errors.New("the server's cgroup v2 is unknown")
	case "/":
		return "", errRootCgroup
	}
	dir := filepath.Join(v2root, filepath.Clean("/"+cg))
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("the server's cgroup: %w", err)
	}
	return dir, nil
}

// packetAttacher attaches the cgroup_skb query programs to the cgroups of
// the PostgreSQL servers, once per cgroup, through the probes (so that
// pause and resume cover them). Safe for concurrent use.
type packetAttacher struct {
	p      *probes
	logger *slog.Logger

	mu   sync.Mutex
	done map[string]error // by cgroup directory: nil attached
}

func newPacketAttacher(p *probes, logger *slog.Logger) *packetAttacher {
	return &packetAttacher{p: p, logger: logger, done: make(map[string]error)}
}

// cgroupWays are the two programs on dir.
func cgroupWays(dir string) []attachWay {
	at := func(typ ebpf.AttachType) func(*ebpf.Program) (link.Link, error) {
		return func(prog *ebpf.Program) (link.Link, error) {
			return link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: typ, Program: prog})
		}
	}
	return []attachWay{
		{typ: HookTypeCgroupSKB, program: bpf.DBSockProgDbSkbIngress, attach: at(ebpf.AttachCGroupInetIngress)},
		{typ: HookTypeCgroupSKB, program: bpf.DBSockProgDbSkbEgress, attach: at(ebpf.AttachCGroupInetEgress)},
	}
}

// attach attaches both programs to dir unless done before, and says
// whether they are attached there.
func (a *packetAttacher) attach(dir string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err, ok := a.done[dir]; ok {
		return err
	}
	var err error
	for _, w := range cgroupWays(dir) {
		if err = a.p.try(w); err != nil {
			err = fmt.Errorf("attach %s to %s: %s", w.program, dir, explain(w.typ, err))
			break
		}
	}
	// A half attachment (ingress only) measures nothing and stays until
	// the collector stops: harmless.
	a.done[dir] = err
	if err != nil {
		a.logger.Warn("PostgreSQL query latency not measured from the server's packets: the socket tracepoints measure it, at a higher cost", "cgroup", dir, "err", err)
	} else {
		a.logger.Info("PostgreSQL query latency measured from the server's packets", "cgroup", dir)
	}
	return err
}
