package collector

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mciv/mciv/bpf"
)

// Hook names of the MySQL/MariaDB probes.
const (
	mysqlHookEnter  = "mysql:dispatch_command"
	mysqlHookReturn = "mysql:dispatch_command_return"
	// HookTypeUprobe and HookTypeUretprobe are function entry and return
	// probes on a user-space binary.
	HookTypeUprobe    = "uprobe"
	HookTypeUretprobe = "uretprobe"
)

// installedMySQL are where distributions install the server.
var installedMySQL = []string{"/usr/sbin/mariadbd", "/usr/sbin/mysqld"}

// dispatchCommandSymbol matches the mangled name of dispatch_command.
var dispatchCommandSymbol = regexp.MustCompile(`^_Z\d+dispatch_command`)

// mysqlObject is the MySQL object, with the slow query threshold set.
func mysqlObject(threshold time.Duration) object {
	return object{
		name: "mysql",
		load: func() (*ebpf.CollectionSpec, error) {
			spec, err := bpf.LoadMySQL()
			if err != nil {
				return nil, err
			}
			if err := spec.Variables[bpf.MySQLVarSlowQueryNs].Set(uint64(threshold)); err != nil {
				return nil, fmt.Errorf("mysql object: set slow_query_ns: %w", err)
			}
			return spec, nil
		},
		hooks: func() []hookSpec { return nil },
	}
}

// findDispatchCommand returns the mangled dispatch_command symbol of an
// ELF file and the attach cookie for its signature (see bpf/mysql.bpf.c).
func findDispatchCommand(path, goarch string) (string, uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var syms []elf.Symbol
	if ds, err := f.DynamicSymbols(); err == nil {
		syms = append(syms, ds...)
	}
	if ss, err := f.Symbols(); err == nil {
		syms = append(syms, ss...)
	}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || !dispatchCommandSymbol.MatchString(s.Name) {
			continue
		}
		cookie, err := dispatchCookie(s.Name, goarch)
		if err != nil {
			return "", 0, err
		}
		return s.Name, cookie, nil
	}
	return "", 0, fmt.Errorf("%s: no dispatch_command symbol", path)
}

// dispatchCookie says where dispatch_command's command, packet and length
// arguments are, from its mangled signature.
func dispatchCookie(symbol, goarch string) (uint64, error) {
	arg := func(i int) (uint64, error) { // the i-th integer argument's pt_regs slot
		names := map[string][]string{"amd64": {"rdi", "rsi", "rdx", "rcx"}, "arm64": {"x0", "x1", "x2", "x3"}}[goarch]
		if i >= len(names) {
			return 0, fmt.Errorf("no argument registers for %s", goarch)
		}
		s, err := regSlot(names[i], goarch)
		return uint64(s), err
	}
	var cmd, packet, length int
	switch {
	case strings.HasPrefix(symbol, "_Z16dispatch_command19enum_server_commandP3THDPcj"):
		// MariaDB: (command, thd, packet, packet_length, ...).
		cmd, packet, length = 0, 2, 3
	case strings.HasPrefix(symbol, "_Z16dispatch_commandP3THDPK8COM_DATA19enum_server_command"):
		// MySQL 5.7+: (thd, com_data, command); the text is inside
		// COM_DATA, not read.
		c, err := arg(2)
		return c | argNone<<8 | argNone<<16, err
	default:
		return 0, fmt.Errorf("dispatch_command signature %s not supported", symbol)
	}
	c, err1 := arg(cmd)
	p, err2 := arg(packet)
	l, err3 := arg(length)
	return c | p<<8 | l<<16, errors.Join(err1, err2, err3)
}

// mysqlAttacher attaches the MySQL programs (dispatch_command's entry and
// return) to every server binary it is shown.
type mysqlAttacher struct {
	binaryAttacher
	enter, ret *ebpf.Program
}

func newMySQLAttacher(p *probes) *mysqlAttacher {
	a := &mysqlAttacher{binaryAttacher: newBinaryAttacher(
		[]HookStatus{{Name: mysqlHookEnter, Type: HookTypeUprobe}, {Name: mysqlHookReturn, Type: HookTypeUretprobe}},
		"no MySQL or MariaDB server binary found (installed or running)")}
	if progs := a.load(p, bpf.MySQLProgMysqlDispatchEnter, bpf.MySQLProgMysqlDispatchReturn); len(progs) == 2 {
		a.enter, a.ret = progs[0], progs[1]
	}
	a.attachBinary = a.attachDispatch
	return a
}

// attachDispatch attaches to dispatch_command's entry and return.
func (a *mysqlAttacher) attachDispatch(path string) ([]link.Link, error) {
	sym, cookie, err := findDispatchCommand(path, runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	enter, err := ex.Uprobe(sym, a.enter, &link.UprobeOptions{Cookie: cookie})
	if err != nil {
		return nil, fmt.Errorf("uprobe %s: %w", sym, err)
	}
	ret, err := ex.Uretprobe(sym, a.ret, nil)
	if err != nil {
		enter.Close()
		return nil, fmt.Errorf("uretprobe %s: %w", sym, err)
	}
	return []link.Link{enter, ret}, nil
}

// mysqlScan is what one look at the host found.
type mysqlScan struct {
	binaries binarySet
	servers  map[int]int // pid -> port
}

// scanMySQL finds MySQL/MariaDB server binaries (installed, and those of
// running processes under procRoot) and the running servers' ports.
func scanMySQL(procRoot string, installed []string) mysqlScan {
	s := mysqlScan{servers: make(map[int]int)}
	for _, p := range installed {
		s.binaries.add(p)
	}
	eachProcess(procRoot, []string{"mariadbd", "mysqld"}, func(pid int, dir string, _ int) {
		s.binaries.add(filepath.Join(dir, "exe"))
		s.servers[pid] = mysqlPort(dir)
	})
	return s
}

// mysqlPort reads the --port / -P option of a server's command line, else
// the default 3306.
func mysqlPort(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return 3306
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	for i, a := range args {
		var v string
		switch {
		case strings.HasPrefix(a, "--port="):
			v = strings.TrimPrefix(a, "--port=")
		case (a == "--port" || a == "-P") && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "-P") && len(a) > 2:
			v = a[2:]
		default:
			continue
		}
		if p, err := strconv.Atoi(v); err == nil {
			return p
		}
	}
	return 3306
}

// mysqlInstance is the instance label of a server's port.
func mysqlInstance(port int) string { return fmt.Sprintf("mysql:%d", port) }
