package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a rules file, with its position and, when it is
// inside one, the group and rule it belongs to.
type Error struct {
	File string
	Line int // 1-based; 0 when unknown
	Col  int // 1-based; 0 when unknown
	// Group is the name of the group the error is in, if any.
	Group string
	// Rule is the alert name of the rule the error is in, if any.
	Rule string
	// RuleIndex is the 1-based position of that rule in its group (0 when
	// the error is not inside a rule); it identifies a rule without a name.
	RuleIndex int
	Msg       string
}

// Error formats the error as `file:line:col: group "g", rule "r": message`.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(Pos{File: e.File, Line: e.Line, Col: e.Col}.String())
	b.WriteString(": ")
	var ctx []string
	if e.Group != "" {
		ctx = append(ctx, fmt.Sprintf("group %q", e.Group))
	}
	switch {
	case e.Rule != "":
		ctx = append(ctx, fmt.Sprintf("rule %q", e.Rule))
	case e.RuleIndex > 0:
		ctx = append(ctx, fmt.Sprintf("rule %d", e.RuleIndex))
	}
	if len(ctx) > 0 {
		b.WriteString(strings.Join(ctx, ", "))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a set of rules files: first the paths
// that could not be read, then each file's errors in file order and by
// position within the file.
type Errors []Error

// Error lists the errors, one a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortByPos orders the errors of one file by line and column.
func (es Errors) sortByPos() {
	slices.SortStableFunc(es, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}
