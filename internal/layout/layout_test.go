package layout

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImportsPointDown lists every package of the module with `go list`
// and checks each non-test import against Layers: nothing imports a
// higher layer or a sibling part, and only app/demo and the labs
// themselves import internal/lab/... outside tests.
func TestImportsPointDown(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	mod, err := exec.Command(goTool, "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	module := strings.TrimSpace(string(mod))
	cmd := exec.Command(goTool, "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	layers := Layers()
	var pkgs int
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		from := strings.TrimPrefix(fields[0], module+"/")
		pkgs++
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := strings.TrimPrefix(imp, module+"/")
			if err := checkImport(layers, from, to); err != "" {
				t.Errorf("%s imports %s: %s", from, to, err)
			}
		}
	}
	if pkgs < 30 {
		t.Fatalf("go list found only %d packages", pkgs)
	}
}

// checkImport says why from may not import to, or "".
func checkImport(layers map[string]int, from, to string) string {
	top := func(p string) string { return strings.SplitN(p, "/", 2)[0] }
	rf, okf := layers[top(from)]
	rt, okt := layers[top(to)]
	switch {
	case !okf:
		return "the importer's folder " + top(from) + " is not in layout.Layers"
	case !okt:
		return "the imported folder " + top(to) + " is not in layout.Layers"
	case isLab(to) && !isLab(from) && from != "app/demo":
		return "only tests (and the demo) import the labs under internal/lab"
	case top(from) == top(to):
		return ""
	case rt > rf:
		return "it points up a layer"
	case rt == rf:
		return "the parts meet on the bus, not through each other's packages"
	}
	return ""
}

func isLab(p string) bool { return p == "internal/lab" || strings.HasPrefix(p, "internal/lab/") }

func TestCheckImport(t *testing.T) {
	layers := Layers()
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"rules", "detect", true},
		{"rules/default", "analyzer/eval", false},
		{"internal/bus", "app", false},
		{"detect", "rules", false},
		{"analyzer", "notifier", false},
		{"failover/actuator", "failover/patroni", true},
		{"app", "failover/actuator", true},
		{"collector", "internal/lab/pglab", false},
		{"app/demo", "internal/lab/lossnet", true},
		{"internal/lab/patronilab", "internal/lab/lossnet", true},
		{"newfolder", "internal/wire", false},
	} {
		if got := checkImport(layers, tc.from, tc.to) == ""; got != tc.ok {
			t.Errorf("%s -> %s: allowed %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
}
