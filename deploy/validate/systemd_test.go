package validate

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func systemdDir(t testing.TB) string { return filepath.Join(repoRoot(t), "deploy", "systemd") }

// TestSystemdVerify runs systemd-analyze verify on every unit, with
// ExecStart pointing at a freshly built mciv.
func TestSystemdVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	need(t, err == nil, "systemd-analyze not installed (apt-get install systemd)")
	bin := mcivBinary(t)
	units, _ := filepath.Glob(filepath.Join(systemdDir(t), "*.service"))
	if len(units) != 3 {
		t.Fatalf("want the collector, analyzer and notifier units, have %v", units)
	}
	dir := t.TempDir()
	var args []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.ReplaceAll(string(data), "/usr/local/bin/mciv", bin)
		// The drop-in is verified as part of its unit.
		if filepath.Base(u) == "mciv-collector.service" {
			dropin, err := os.ReadFile(filepath.Join(systemdDir(t), "mciv-collector.service.d", "uprobes.conf"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "mciv-collector-uprobes.service"), []byte(body+"\n"+string(dropin)), 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, filepath.Join(dir, "mciv-collector-uprobes.service"))
		}
		p := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	cmd := exec.Command(analyze, append([]string{"verify", "--man=no", "--recursive-errors=no"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for l := range strings.Lines(string(out)) {
		if strings.Contains(l, "mciv") {
			t.Errorf("systemd-analyze verify: %s", strings.TrimSpace(l))
		}
	}
}

// unitCaps reads AmbientCapabilities= of a unit file (and drop-ins given).
func unitCaps(t *testing.T, files ...string) []string {
	t.Helper()
	var caps []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "AmbientCapabilities="); ok {
				caps = append(caps, strings.Fields(v)...)
			}
		}
		fh.Close()
	}
	return caps
}

// capNumbers are the capabilities the units name.
var capNumbers = map[string]uint{
	"CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_NET_ADMIN": 12, "CAP_IPC_LOCK": 14,
	"CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_SYS_RESOURCE": 24, "CAP_PERFMON": 38, "CAP_BPF": 39,
}

// boundingSet is this process's capability bounding set.
func boundingSet(t *testing.T) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return 0
}

type hook struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Attached bool   `json:"attached"`
	Error    string `json:"error"`
}

// doctor runs `mciv doctor --json`, as root (caps nil) or as user with
// exactly caps as ambient capabilities, and returns hook name -> attached types.
func doctor(t *testing.T, bin string, usr *user.User, caps []string) map[string][]string {
	t.Helper()
	args := []string{"doctor", "--json"}
	name := bin
	if caps != nil {
		var list []string
		for _, c := range caps {
			list = append(list, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
		}
		capArg := strings.Join(list, ",")
		if capArg == "" {
			capArg = "-all"
		}
		name = "setpriv"
		args = append([]string{"--reuid=" + usr.Uid, "--regid=" + usr.Gid, "--init-groups",
			"--inh-caps=" + capArg, "--ambient-caps=" + capArg, "--bounding-set=" + boundingArg(caps), "--", bin}, args...)
	}
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	var rep struct {
		Hooks []hook `json:"hooks"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("mciv doctor --json: %v\n%s", err, out)
	}
	res := map[string][]string{}
	for _, h := range rep.Hooks {
		if _, ok := res[h.Name]; !ok {
			res[h.Name] = nil
		}
		if h.Attached {
			res[h.Name] = append(res[h.Name], h.Type)
		}
	}
	return res
}

// boundingArg limits the bounding set to caps too, as the unit's
// CapabilityBoundingSet= does.
func boundingArg(caps []string) string {
	parts := []string{"-all"}
	for _, c := range caps {
		parts = append(parts, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(parts, ",")
}

func isUprobe(types []string) bool {
	for _, ty := range types {
		if ty != "uprobe" && ty != "uretprobe" && ty != "usdt" {
			return false
		}
	}
	return len(types) > 0
}

// TestCollectorUnitCapabilities runs `mciv doctor` as an unprivileged user
// with the collector unit's capabilities and no others, and checks that
// every hook root can attach attaches: kernel hooks with the unit alone,
// uprobes with the uprobes drop-in.
func TestCollectorUnitCapabilities(t *testing.T) {
	need(t, os.Geteuid() == 0, "needs root: runs mciv as another user with chosen capabilities")
	_, err := exec.LookPath("setpriv")
	need(t, err == nil, "setpriv not installed (apt-get install util-linux)")
	bin := mcivBinary(t)
	usr := testUser(t)
	if !mounted("/sys/kernel/tracing", "tracefs") {
		if out, err := exec.Command("mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing").CombinedOutput(); err != nil {
			t.Fatalf("mount tracefs: %v\n%s", err, out)
		}
	}
	unit := filepath.Join(systemdDir(t), "mciv-collector.service")
	dropin := filepath.Join(systemdDir(t), "mciv-collector.service.d", "uprobes.conf")
	bnd := boundingSet(t)
	available := func(caps []string) []string {
		var out []string
		for _, c := range caps {
			n, ok := capNumbers[c]
			if !ok {
				t.Fatalf("unit names %s: add it to capNumbers", c)
			}
			if bnd&(1<<n) == 0 {
				t.Logf("%s is not in this machine's bounding set: run without it", c)
				continue
			}
			out = append(out, c)
		}
		return out
	}

	root := doctor(t, bin, nil, nil)
	base := available(unitCaps(t, unit))
	full := available(unitCaps(t, unit, dropin))
	t.Logf("unit capabilities here: %v; with the uprobes drop-in: %v", base, full)
	withUnit := doctor(t, bin, usr, base)
	withDropin := doctor(t, bin, usr, full)
	for name, types := range root {
		// query_latency rows say how each running PostgreSQL is
		// measured: only root sees other users' servers.
		if len(types) == 0 || strings.HasPrefix(name, "query_latency ") {
			continue
		}
		got := withUnit[name]
		if isUprobe(types) {
			got = withDropin[name]
		}
		if len(got) == 0 {
			t.Errorf("hook %s: attached as root (%v), not as %s with the unit's capabilities", name, types, usr.Username)
		} else {
			t.Logf("hook %s: root %v, unit %v", name, types, got)
		}
	}

	// Which capability is really needed: drop one at a time, from the
	// unit's set for its own, from the drop-in's set for the drop-in's.
	for _, c := range full {
		set, ref := base, withUnit
		if !slices.Contains(base, c) {
			set, ref = full, withDropin
		}
		less := slices.DeleteFunc(slices.Clone(set), func(x string) bool { return x == c })
		res := doctor(t, bin, usr, less)
		var lost []string
		for name, types := range ref {
			if len(types) > 0 && len(res[name]) == 0 {
				lost = append(lost, name)
			}
		}
		slices.Sort(lost)
		if len(lost) == 0 {
			t.Logf("without %s: every hook still attaches on this kernel", c)
		} else {
			t.Logf("without %s: %v do not attach", c, lost)
		}
	}
}

// testUser is an unprivileged system user to run the collector as.
func testUser(t *testing.T) *user.User {
	t.Helper()
	const name = "mciv-test"
	if u, err := user.Lookup(name); err == nil {
		return u
	}
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Logf("useradd %s: %v %s; using nobody", name, err, out)
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mounted(path, fstype string) bool {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for l := range strings.Lines(string(data)) {
		f := strings.Fields(l)
		if len(f) >= 3 && f[1] == path && f[2] == fstype {
			return true
		}
	}
	return false
}
