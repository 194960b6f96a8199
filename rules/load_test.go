package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

const ruleA = `groups:
  - name: a
    rules:
      - alert: A
        signal: s
        stat: rate
        detector: {type: threshold, op: ">", value: 1}
`

const ruleB = `groups:
  - name: b
    rules:
      - alert: B
        signal: s
        stat: count
        detector: {type: threshold, op: ">", value: 1}
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadFilesDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"10-a.yaml":      ruleA,
		"20-b.yml":       ruleB,
		"README.md":      "not rules",
		".#20-b.yml":     "editor lock file: {{{",
		"sub/other.yaml": "not: [loaded",
	})
	set, err := LoadFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range set.Rules() {
		names = append(names, r.Alert+"@"+filepath.Base(r.Pos.File))
	}
	if got := strings.Join(names, ","); got != "A@10-a.yaml,B@20-b.yml" {
		t.Fatalf("rules %s", got)
	}
	// A file named twice (itself and through its directory) loads once.
	if _, err := LoadFiles(dir, filepath.Join(dir, "10-a.yaml")); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFilesReportsEveryFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml":      ruleA,
		"a-too.yaml":  strings.Replace(ruleB, "alert: B", "alert: A", 1),
		"bad.yaml":    ruleB + "        for: 1x\n",
		"empty/x.txt": "",
	})
	_, err := LoadFiles(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "a-too.yaml"),
		filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "missing.yaml"), filepath.Join(dir, "empty"))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	want := []string{
		dir + "/missing.yaml: cannot read: no such file or directory",
		dir + "/empty: directory holds no *.yaml or *.yml rules files",
		dir + `/a-too.yaml:4:9: group "b", rule "A": alert "A" already defined at ` + dir + "/a.yaml:4:9",
		dir + `/bad.yaml:8:14: group "b", rule "B": for: "1x" is not a duration such as 30s, 5m or 1h30m`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadFS(t *testing.T) {
	fsys := fstest.MapFS{"r/a.yaml": {Data: []byte(ruleA)}, "r/b.yaml": {Data: []byte(ruleB)}}
	set, err := LoadFS(fsys, "r")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(set.Rules()); n != 2 || set.Rules()[1].Pos.File != "r/b.yaml" {
		t.Fatalf("%d rules: %+v", n, set.Rules())
	}
	if _, err := LoadFS(fsys); err == nil {
		t.Fatal("no paths: want error")
	}
}

func TestLoadDefault(t *testing.T) {
	set, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if set.NumGroups() < 1 || set.NumRules() < 1 || set.NumRules() != len(set.Rules()) {
		t.Fatalf("%d groups, %d rules", set.NumGroups(), set.NumRules())
	}
	var empty *Set
	if empty.NumRules() != 0 || empty.NumGroups() != 0 || empty.Rules() != nil {
		t.Fatal("nil set")
	}
}

func TestListFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{"10-a.yaml": ruleA, "20-b.yml": ruleB, "README.md": "x", "sub/c.yaml": ruleA})
	files, err := ListFiles(dir, filepath.Join(dir, "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml: cannot read") {
		t.Fatalf("error %v", err)
	}
	if len(files) != 2 || filepath.Base(files[0]) != "10-a.yaml" || filepath.Base(files[1]) != "20-b.yml" {
		t.Fatalf("files %v", files)
	}
}

func TestSameDefinition(t *testing.T) {
	parse := func(src string) *Rule {
		t.Helper()
		g, err := Parse("x.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return g[0].Rules[0]
	}
	a := parse(ruleA)
	moved := parse("# a comment moves every line\n" + ruleA)
	changed := parse(strings.Replace(ruleA, "value: 1", "value: 2", 1))
	if !SameDefinition(a, moved) || SameDefinition(a, changed) || SameDefinition(a, nil) {
		t.Fatalf("same %v changed %v", SameDefinition(a, moved), SameDefinition(a, changed))
	}
}
