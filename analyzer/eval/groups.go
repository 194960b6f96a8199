package eval

import (
	"slices"
	"strings"
)

// groupSet is the alert groups of one rule on one host, by key, kept in
// key order so that evaluation is deterministic without sorting.
type groupSet struct {
	m     map[string]*group
	order []*group // sorted by key
}

func newGroupSet() *groupSet { return &groupSet{m: map[string]*group{}} }

// len is the number of groups; a nil set has none.
func (s *groupSet) len() int {
	if s == nil {
		return 0
	}
	return len(s.order)
}

// all returns the groups in key order; a nil set has none.
func (s *groupSet) all() []*group {
	if s == nil {
		return nil
	}
	return s.order
}

// put adds g (whose key is set), replacing a group of the same key.
func (s *groupSet) put(g *group) {
	i, found := slices.BinarySearchFunc(s.order, g.key, func(x *group, k string) int { return strings.Compare(x.key, k) })
	if found {
		s.order[i] = g
	} else {
		s.order = slices.Insert(s.order, i, g)
	}
	s.m[g.key] = g
}

// removeIf drops the groups for which drop is true.
func (s *groupSet) removeIf(drop func(*group) bool) {
	s.order = slices.DeleteFunc(s.order, func(g *group) bool {
		if drop(g) {
			delete(s.m, g.key)
			return true
		}
		return false
	})
}
