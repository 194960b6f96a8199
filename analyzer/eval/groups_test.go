package eval

import (
	"strings"
	"testing"
)

func TestGroupSetKeepsKeyOrder(t *testing.T) {
	s := newGroupSet()
	for _, k := range []string{"b", "d", "a", "c", "b"} {
		s.put(&group{key: k})
	}
	keys := func() string {
		var out []string
		for _, g := range s.all() {
			out = append(out, g.key)
		}
		return strings.Join(out, ",")
	}
	if got := keys(); got != "a,b,c,d" || s.len() != 4 || len(s.m) != 4 {
		t.Fatalf("keys %s", got)
	}
	s.removeIf(func(g *group) bool { return g.key == "b" || g.key == "d" })
	if got := keys(); got != "a,c" || s.m["b"] != nil || s.m["a"] == nil {
		t.Fatalf("after remove: %s", got)
	}
	var none *groupSet
	if none.len() != 0 || none.all() != nil {
		t.Fatal("nil set not empty")
	}
}
