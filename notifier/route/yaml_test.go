package route

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func yamlNode(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

func TestFieldHelpers(t *testing.T) {
	n := yamlNode(t, "a: 1s\nb: [x, y]\nc: true\nd: ['host=db-1']\n")
	f, err := Fields(n, "thing", "a", "b", "c", "d")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := Duration(f["a"], "a"); err != nil || d != time.Second {
		t.Errorf("Duration = %v, %v", d, err)
	}
	if ss, err := Strings(f["b"], "b"); err != nil || strings.Join(ss, ",") != "x,y" {
		t.Errorf("Strings = %v, %v", ss, err)
	}
	if b, err := Bool(f["c"], "c"); err != nil || !b {
		t.Errorf("Bool = %v, %v", b, err)
	}
	if ms, err := Matchers(f["d"], "d"); err != nil || len(ms) != 1 {
		t.Errorf("Matchers = %v, %v", ms, err)
	}
	if _, err := Fields(n, "thing", "a"); err == nil || !strings.HasPrefix(err.Error(), "2:1: thing: unknown field \"b\"") {
		t.Errorf("unknown field error = %v", err)
	}
	if _, err := Duration(f["b"], "b"); err == nil {
		t.Error("a list decoded as a duration")
	}
	if _, err := Fields(yamlNode(t, "a: 1\na: 2\n"), "thing", "a"); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate key error = %v", err)
	}
	if _, err := Duration(yamlNode(t, "-1s"), "x"); err == nil {
		t.Error("a negative duration was accepted")
	}
}
