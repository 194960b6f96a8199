package route

import (
	"fmt"
	"slices"
	"time"

	"github.com/mciv/mciv/notifier/labels"
	"gopkg.in/yaml.v3"
)

// Error is a configuration error at a place in the YAML file. The config
// loader prefixes it with the file name: file:line:col: message.
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg) }

// Position returns the line and column (1-based) the error is about.
func (e *Error) Position() (line, column int) { return e.Line, e.Column }

// Errorf returns an *Error about node n.
func Errorf(n *yaml.Node, format string, args ...any) error {
	return &Error{Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)}
}

// Fields returns the values of mapping node n by key, and an error at the
// first key that is not one of known (the config is strict) or at n itself
// when it is not a mapping.
func Fields(n *yaml.Node, what string, known ...string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, Errorf(n, "%s: want a mapping", what)
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(known, k.Value) {
			return nil, Errorf(k, "%s: unknown field %q (known: %v)", what, k.Value, known)
		}
		if _, dup := out[k.Value]; dup {
			return nil, Errorf(k, "%s: field %q given twice", what, k.Value)
		}
		out[k.Value] = v
	}
	return out, nil
}

// String decodes a scalar string.
func String(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", Errorf(n, "%s: want a string", what)
	}
	return n.Value, nil
}

// Bool decodes a boolean.
func Bool(n *yaml.Node, what string) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		return false, Errorf(n, "%s: want true or false", what)
	}
	return b, nil
}

// Duration decodes a Go duration ("30s", "4h"); it must not be negative.
func Duration(n *yaml.Node, what string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, Errorf(n, "%s: want a duration such as 30s or 4h", what)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d < 0 {
		return 0, Errorf(n, "%s: %q is not a duration such as 30s or 4h", what, n.Value)
	}
	return d, nil
}

// Strings decodes a sequence of strings.
func Strings(n *yaml.Node, what string) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, Errorf(n, "%s: want a list", what)
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		s, err := String(c, what)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Matchers decodes a list of matchers (`host=db-1`, `severity=~"crit.*"`),
// reporting a bad one at its own position.
func Matchers(n *yaml.Node, what string) (labels.Matchers, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, Errorf(n, "%s: want a list of matchers such as host=db-1", what)
	}
	var ms labels.Matchers
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return nil, Errorf(c, "%s: want a matcher such as host=db-1", what)
		}
		m, err := labels.Parse(c.Value)
		if err != nil {
			return nil, Errorf(c, "%s: %v", what, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}
