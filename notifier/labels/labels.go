// Package labels matches alert label sets, as Alertmanager's matchers do:
// a Matcher is name, operator (=, !=, =~, !~) and value, written
// `host=db-1`, `severity!="info"` or `host=~"db-.*"`. Routes, silences and
// inhibition rules all select alerts with matchers.
package labels

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mciv/mciv/internal/wire"
)

// AlertName is the pseudo-label that holds an alert's rule name, so that
// matchers can select rules (`alertname=TCPRetransmitRateHigh`).
const AlertName = "alertname"

// Of returns the labels matchers see for a: its labels plus alertname (the
// rule), unless the alert has an alertname label of its own.
func Of(a *wire.Alert) map[string]string {
	m := make(map[string]string, len(a.Labels)+1)
	for k, v := range a.Labels {
		m[k] = v
	}
	if _, ok := m[AlertName]; !ok {
		m[AlertName] = a.Rule
	}
	return m
}

// Op is a matcher's comparison.
type Op string

// Matcher operators.
const (
	Equal     Op = "="
	NotEqual  Op = "!="
	Regexp    Op = "=~"
	NotRegexp Op = "!~"
)

// Matcher selects label sets by one label. The zero value is not valid: use
// Parse or New.
type Matcher struct {
	Name  string `json:"name"`
	Op    Op     `json:"op"`
	Value string `json:"value"`
	re    *regexp.Regexp
}

// New returns a matcher; a regular expression is anchored at both ends.
func New(name string, op Op, value string) (Matcher, error) {
	m := Matcher{Name: name, Op: op, Value: value}
	if err := m.compile(); err != nil {
		return Matcher{}, err
	}
	return m, nil
}

func (m *Matcher) compile() error {
	if !validName(m.Name) {
		return fmt.Errorf("matcher: invalid label name %q", m.Name)
	}
	switch m.Op {
	case Equal, NotEqual:
		m.re = nil
	case Regexp, NotRegexp:
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return fmt.Errorf("matcher %s: %w", m.Name, err)
		}
		m.re = re
	default:
		return fmt.Errorf("matcher %s: unknown operator %q", m.Name, m.Op)
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// Parse parses `name<op>value`; the value may be double-quoted (Go syntax).
func Parse(s string) (Matcher, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, "=!")
	if i <= 0 {
		return Matcher{}, fmt.Errorf("matcher %q: want name=value, name!=value, name=~regexp or name!~regexp", s)
	}
	name, rest := strings.TrimSpace(s[:i]), s[i:]
	var op Op
	for _, o := range []Op{Regexp, NotRegexp, NotEqual, Equal} {
		if strings.HasPrefix(rest, string(o)) {
			op = o
			break
		}
	}
	if op == "" {
		return Matcher{}, fmt.Errorf("matcher %q: unknown operator", s)
	}
	value := strings.TrimSpace(rest[len(op):])
	if strings.HasPrefix(value, `"`) {
		v, err := strconv.Unquote(value)
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: bad quoted value: %w", s, err)
		}
		value = v
	}
	m, err := New(name, op, value)
	if err != nil {
		return Matcher{}, fmt.Errorf("matcher %q: %w", s, err)
	}
	return m, nil
}

// MustParse is Parse for constants in code and tests; it panics on error.
func MustParse(s string) Matcher {
	m, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return m
}

// Matches reports whether the label set satisfies m; a missing label has
// the empty value.
func (m Matcher) Matches(ls map[string]string) bool {
	v := ls[m.Name]
	switch m.Op {
	case Equal:
		return v == m.Value
	case NotEqual:
		return v != m.Value
	case Regexp, NotRegexp:
		re := m.re
		if re == nil { // decoded from JSON
			c := m
			if err := c.compile(); err != nil {
				return false
			}
			re = c.re
		}
		return re.MatchString(v) == (m.Op == Regexp)
	}
	return false
}

// String writes m back in the syntax Parse reads.
func (m Matcher) String() string {
	return m.Name + string(m.Op) + strconv.Quote(m.Value)
}

// Matchers is a conjunction: all must match.
type Matchers []Matcher

// Matches reports whether every matcher matches ls (true when empty).
func (ms Matchers) Matches(ls map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(ls) {
			return false
		}
	}
	return true
}

// String joins the matchers with commas in braces: {host="db-1",severity="critical"}.
func (ms Matchers) String() string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// ParseAll parses every string with Parse.
func ParseAll(ss []string) (Matchers, error) {
	ms := make(Matchers, 0, len(ss))
	for _, s := range ss {
		m, err := Parse(s)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}
