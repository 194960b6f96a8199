// Package route decides who hears about an alert and how alerts are grouped,
// after Alertmanager's routing tree: a route matches alerts by label
// matchers and names a receiver; child routes refine it; the first matching
// child wins unless it says `continue: true`; an alert no child matches
// stays with the parent. Settings not given on a route are inherited from
// its parent.
//
// Grouping puts alerts with the same values of the route's group_by labels
// into one group: one Slack message per group, updated as its alerts change.
package route

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/mciv/mciv/notifier/labels"
	"gopkg.in/yaml.v3"
)

// Defaults of the root route.
var (
	DefaultGroupBy        = []string{labels.AlertName, "cluster", "host"}
	DefaultGroupWait      = time.Duration(0)
	DefaultGroupInterval  = time.Duration(0)
	DefaultRepeatInterval = 4 * time.Hour
)

// DefaultReceiver is the receiver of the root route when none is named.
const DefaultReceiver = "default"

// Route is one node of the routing tree as configured. Pointer fields are
// nil when not given (inherited from the parent).
type Route struct {
	Receiver       string
	Matchers       labels.Matchers
	GroupBy        []string
	GroupWait      *time.Duration
	GroupInterval  *time.Duration
	RepeatInterval *time.Duration
	Continue       bool
	Routes         []*Route

	line, column int
}

// UnmarshalYAML decodes a route strictly, with file positions in errors.
func (r *Route) UnmarshalYAML(n *yaml.Node) error {
	f, err := Fields(n, "route", "receiver", "matchers", "group_by", "group_wait", "group_interval", "repeat_interval", "continue", "routes")
	if err != nil {
		return err
	}
	*r = Route{line: n.Line, column: n.Column}
	if v := f["receiver"]; v != nil {
		if r.Receiver, err = String(v, "route.receiver"); err != nil {
			return err
		}
	}
	if v := f["matchers"]; v != nil {
		if r.Matchers, err = Matchers(v, "route.matchers"); err != nil {
			return err
		}
	}
	if v := f["group_by"]; v != nil {
		if r.GroupBy, err = Strings(v, "route.group_by"); err != nil {
			return err
		}
	}
	for key, dst := range map[string]**time.Duration{"group_wait": &r.GroupWait, "group_interval": &r.GroupInterval, "repeat_interval": &r.RepeatInterval} {
		if v := f[key]; v != nil {
			d, err := Duration(v, "route."+key)
			if err != nil {
				return err
			}
			*dst = &d
		}
	}
	if v := f["continue"]; v != nil {
		if r.Continue, err = Bool(v, "route.continue"); err != nil {
			return err
		}
	}
	if v := f["routes"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			return Errorf(v, "route.routes: want a list of routes")
		}
		for _, c := range v.Content {
			child := new(Route)
			if err := child.UnmarshalYAML(c); err != nil {
				return err
			}
			r.Routes = append(r.Routes, child)
		}
	}
	return nil
}

// Receiver is a named destination.
type Receiver struct {
	Name string `json:"name"`
	// SlackChannel is the Slack channel (ID or #name) of the receiver's
	// messages; empty means the default channel (slack.channel).
	SlackChannel string `json:"slack_channel,omitempty"`

	line, column int
}

// UnmarshalYAML decodes a receiver strictly, with file positions in errors.
func (r *Receiver) UnmarshalYAML(n *yaml.Node) error {
	f, err := Fields(n, "receiver", "name", "slack_channel")
	if err != nil {
		return err
	}
	*r = Receiver{line: n.Line, column: n.Column}
	v := f["name"]
	if v == nil {
		return Errorf(n, "receiver: name is required")
	}
	if r.Name, err = String(v, "receiver.name"); err != nil {
		return err
	}
	if !validReceiverName(r.Name) {
		return Errorf(v, "receiver.name %q: want letters, digits, - and _ only", r.Name)
	}
	if v := f["slack_channel"]; v != nil {
		if r.SlackChannel, err = String(v, "receiver.slack_channel"); err != nil {
			return err
		}
	}
	return nil
}

// Match is the outcome of routing one alert to one receiver.
type Match struct {
	Receiver       Receiver
	GroupBy        []string
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
}

// GroupKey identifies the alert group of an alert with label set ls for
// this match: the receiver and the values of the group_by labels. It is a
// valid NATS KV key (letters, digits, '-', '_' and '.').
func (m Match) GroupKey(ls map[string]string) string {
	h := sha256.New()
	for _, l := range m.GroupBy {
		fmt.Fprintf(h, "%s\x00%s\x00", l, ls[l])
	}
	return m.Receiver.Name + "." + hex.EncodeToString(h.Sum(nil))[:20]
}

// GroupLabels returns the group_by labels of ls, for display.
func (m Match) GroupLabels(ls map[string]string) map[string]string {
	out := make(map[string]string, len(m.GroupBy))
	for _, l := range m.GroupBy {
		if v, ok := ls[l]; ok {
			out[l] = v
		}
	}
	return out
}

// Tree is a validated routing tree. It is immutable and safe for concurrent
// use.
type Tree struct {
	root      *node
	receivers map[string]Receiver
}

type node struct {
	match    Match
	matchers labels.Matchers
	cont     bool
	children []*node
}

// New validates the route and the receivers and builds the tree. A nil root
// sends everything to DefaultReceiver, which exists even if not configured
// (on the default Slack channel).
func New(root *Route, receivers []Receiver) (*Tree, error) {
	t := &Tree{receivers: make(map[string]Receiver)}
	for _, r := range receivers {
		if _, dup := t.receivers[r.Name]; dup {
			return nil, &Error{Line: r.line, Column: r.column, Msg: fmt.Sprintf("receiver %q defined twice", r.Name)}
		}
		t.receivers[r.Name] = r
	}
	if _, ok := t.receivers[DefaultReceiver]; !ok {
		t.receivers[DefaultReceiver] = Receiver{Name: DefaultReceiver}
	}
	if root == nil {
		root = &Route{}
	}
	if len(root.Matchers) > 0 {
		return nil, &Error{Line: root.line, Column: root.column, Msg: "route: the root route matches every alert: it must not have matchers"}
	}
	parent := Match{
		Receiver:       t.receivers[DefaultReceiver],
		GroupBy:        DefaultGroupBy,
		GroupWait:      DefaultGroupWait,
		GroupInterval:  DefaultGroupInterval,
		RepeatInterval: DefaultRepeatInterval,
	}
	var err error
	t.root, err = t.build(root, parent)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tree) build(r *Route, parent Match) (*node, error) {
	m := parent
	if r.Receiver != "" {
		rcv, ok := t.receivers[r.Receiver]
		if !ok {
			return nil, &Error{Line: r.line, Column: r.column, Msg: fmt.Sprintf("route: receiver %q is not defined under receivers", r.Receiver)}
		}
		m.Receiver = rcv
	}
	if r.GroupBy != nil {
		m.GroupBy = slices.Clone(r.GroupBy)
		slices.Sort(m.GroupBy)
		m.GroupBy = slices.Compact(m.GroupBy)
	}
	if r.GroupWait != nil {
		m.GroupWait = *r.GroupWait
	}
	if r.GroupInterval != nil {
		m.GroupInterval = *r.GroupInterval
	}
	if r.RepeatInterval != nil {
		m.RepeatInterval = *r.RepeatInterval
	}
	n := &node{match: m, matchers: r.Matchers, cont: r.Continue}
	for _, c := range r.Routes {
		cn, err := t.build(c, m)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, cn)
	}
	return n, nil
}

// Receiver returns the named receiver.
func (t *Tree) Receiver(name string) (Receiver, bool) {
	r, ok := t.receivers[name]
	return r, ok
}

// Match routes the label set ls: the matches in tree order, at least one
// (the root's when nothing deeper matches). A receiver reached twice is
// listed once.
func (t *Tree) Match(ls map[string]string) []Match {
	out := t.root.match1(ls)
	seen := make(map[string]bool, len(out))
	uniq := out[:0]
	for _, m := range out {
		if !seen[m.Receiver.Name] {
			seen[m.Receiver.Name] = true
			uniq = append(uniq, m)
		}
	}
	return uniq
}

func (n *node) match1(ls map[string]string) []Match {
	if !n.matchers.Matches(ls) {
		return nil
	}
	var out []Match
	for _, c := range n.children {
		ms := c.match1(ls)
		out = append(out, ms...)
		if len(ms) > 0 && !c.cont {
			break
		}
	}
	if len(out) == 0 {
		out = []Match{n.match}
	}
	return out
}

// validReceiverName keeps receiver names usable in NATS KV keys.
func validReceiverName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}
