package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"
)

// Keys allowed at each level of a rules file.
func rootKeys() []string  { return []string{"groups"} }
func groupKeys() []string { return []string{"name", "rules"} }
func ruleKeys() []string {
	return []string{"alert", "signal", "stat", "by", "detector", "for", "evidence", "keep_firing_for", "labels", "annotations", "actions"}
}

// Names: alert names become NATS subject tokens and label values, signals
// are Prometheus-style metric names, label names are Prometheus label names.
var (
	alertNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	signalRE    = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	yamlLineRE  = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// Parse parses and validates one rules file. filename is used in error
// positions only. On error it returns Errors listing every problem found,
// and no groups.
func Parse(filename string, data []byte) ([]Group, error) {
	p := &parser{file: filename}
	groups := p.file_(data)
	if len(p.errs) > 0 {
		p.errs.sortByPos()
		return nil, p.errs
	}
	return groups, nil
}

type parser struct {
	file string
	errs Errors
}

// where is the group and rule an error is in.
type where struct {
	group string
	rule  string
	index int
}

func (p *parser) errorf(n *yaml.Node, w where, format string, args ...any) {
	e := Error{File: p.file, Group: w.group, Rule: w.rule, RuleIndex: w.index, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// resolve follows aliases (*anchor) to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "empty"
		}
		return "a scalar"
	}
	return "not a value"
}

// field is one key of a mapping with its value.
type field struct {
	key, val *yaml.Node
}

// mapping checks that n is a mapping whose keys are all in allowed and
// appear once, and returns its fields by key. It returns nil when n is not
// a mapping.
func (p *parser) mapping(n *yaml.Node, w where, what string, allowed []string) map[string]field {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, w, "%s must be a mapping, not %s", what, kindName(n))
		return nil
	}
	fields := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, w, "%s keys must be strings", what)
			continue
		}
		if prev, dup := fields[k.Value]; dup {
			p.errorf(k, w, "key %q already given at line %d", k.Value, prev.key.Line)
			continue
		}
		if !slices.Contains(allowed, k.Value) {
			p.errorf(k, w, "unknown key %q in %s (known: %s)", k.Value, what, strings.Join(allowed, ", "))
			continue
		}
		fields[k.Value] = field{key: k, val: resolve(v)}
	}
	return fields
}

// scalarValue returns the value of the mapping n's key when it is a
// non-null scalar, without reporting anything. It lets errors found before
// a rule's name is checked carry that name.
func scalarValue(n *yaml.Node, key string) string {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			if v := resolve(n.Content[i+1]); v.Kind == yaml.ScalarNode && !isNull(v) {
				return v.Value
			}
			return ""
		}
	}
	return ""
}

// required returns the non-null field key of fs, or reports it missing:
// at its key when it is given without a value, else at parent. prefix
// starts the message ("detector: ").
func (p *parser) required(fs map[string]field, parent *yaml.Node, w where, prefix, key string) (field, bool) {
	f, ok := fs[key]
	if ok && !isNull(f.val) {
		return f, true
	}
	at := parent
	if ok {
		at = f.key
	}
	p.errorf(at, w, "%smissing required key %q", prefix, key)
	return field{}, false
}

// str returns the string value of a required or optional scalar field.
func (p *parser) str(fs map[string]field, parent *yaml.Node, w where, key string, required bool) (string, *yaml.Node, bool) {
	f, ok := fs[key]
	if !ok || isNull(f.val) {
		if required {
			p.required(fs, parent, w, "", key)
		}
		return "", nil, false
	}
	if f.val.Kind != yaml.ScalarNode {
		p.errorf(f.val, w, "%s must be a string, not %s", key, kindName(f.val))
		return "", nil, false
	}
	return f.val.Value, f.val, true
}

func (p *parser) file_(data []byte) []Group {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file holds no groups
		}
		p.yamlError(err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.yamlError(err)
		return nil
	default:
		p.errorf(&extra, where{}, "a rules file holds one YAML document; found another")
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil
	}
	root := doc.Content[0]
	fs := p.mapping(root, where{}, "rules file", rootKeys())
	if fs == nil {
		return nil
	}
	gf, ok := fs["groups"]
	if !ok {
		p.errorf(root, where{}, "missing required key %q", "groups")
		return nil
	}
	if isNull(gf.val) {
		return nil
	}
	if gf.val.Kind != yaml.SequenceNode {
		p.errorf(gf.val, where{}, "groups must be a list, not %s", kindName(gf.val))
		return nil
	}
	var groups []Group
	names := map[string]int{} // group name -> line
	alerts := map[string]int{}
	for _, gn := range gf.val.Content {
		g, ok := p.group(resolve(gn), names, alerts)
		if ok {
			groups = append(groups, g)
		}
	}
	return groups
}

// yamlError reports a YAML syntax error; yaml.v3 gives its line but no column.
func (p *parser) yamlError(err error) {
	msg := err.Error()
	e := Error{File: p.file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = "invalid YAML: " + m[2]
	}
	p.errs = append(p.errs, e)
}

func (p *parser) group(n *yaml.Node, names, alerts map[string]int) (Group, bool) {
	w := where{group: scalarValue(n, "name")}
	fs := p.mapping(n, w, "group", groupKeys())
	if fs == nil {
		return Group{}, false
	}
	g := Group{Pos: Pos{File: p.file, Line: n.Line, Col: n.Column}}
	name, nameNode, ok := p.str(fs, n, w, "name", true)
	if ok {
		if name == "" {
			p.errorf(nameNode, w, "group name is empty")
		} else if line, dup := names[name]; dup {
			p.errorf(nameNode, w, "group name already used at line %d", line)
		} else {
			names[name] = nameNode.Line
		}
		g.Name = name
	}
	rf, ok := fs["rules"]
	if !ok || isNull(rf.val) {
		return g, true
	}
	if rf.val.Kind != yaml.SequenceNode {
		p.errorf(rf.val, w, "rules must be a list, not %s", kindName(rf.val))
		return g, true
	}
	for i, rn := range rf.val.Content {
		if r := p.rule(resolve(rn), g.Name, i+1, alerts); r != nil {
			g.Rules = append(g.Rules, r)
		}
	}
	return g, true
}

func (p *parser) rule(n *yaml.Node, group string, index int, alerts map[string]int) *Rule {
	w := where{group: group, rule: scalarValue(n, "alert"), index: index}
	fs := p.mapping(n, w, "rule", ruleKeys())
	if fs == nil {
		return nil
	}
	r := &Rule{Group: group, Pos: Pos{File: p.file, Line: n.Line, Col: n.Column}}

	if name, at, ok := p.str(fs, n, w, "alert", true); ok {
		switch line, dup := alerts[name]; {
		case !alertNameRE.MatchString(name):
			p.errorf(at, w, "alert name %q must match %s", name, alertNameRE)
		case dup:
			p.errorf(at, w, "alert %q already defined at line %d", name, line)
		default:
			alerts[name] = at.Line
		}
		r.Alert = name
	}
	if sig, at, ok := p.str(fs, n, w, "signal", true); ok {
		if !signalRE.MatchString(sig) {
			p.errorf(at, w, "signal %q must match %s", sig, signalRE)
		}
		r.Signal = sig
	}
	if st, at, ok := p.str(fs, n, w, "stat", true); ok {
		r.Stat = p.stat(st, at, w)
	}
	r.By = p.by(fs, w)
	if f, ok := p.required(fs, n, w, "", "detector"); ok {
		r.Detector = p.detector(f.val, w)
	}
	r.For = p.duration(fs, w, "for")
	r.Evidence = p.evidence(fs, w)
	r.KeepFiringFor = p.duration(fs, w, "keep_firing_for")
	r.Labels = p.labels(fs, w, r.By)
	r.Annotations, r.templates = p.annotations(fs, w, r.By)
	r.Actions = p.actions(fs, w)
	return r
}

func (p *parser) stat(s string, at *yaml.Node, w where) Stat {
	switch st := Stat(s); st {
	case StatRate, StatCount, StatMean, StatMax, StatP50, StatP90, StatP99:
		return st
	}
	p.errorf(at, w, "unknown stat %q (one of rate, count, mean, max, p50, p90, p99)", s)
	return ""
}

func (p *parser) by(fs map[string]field, w where) []string {
	f, ok := fs["by"]
	if !ok || isNull(f.val) {
		return defaultBy()
	}
	if f.val.Kind != yaml.SequenceNode {
		p.errorf(f.val, w, "by must be a list of label names, not %s", kindName(f.val))
		return defaultBy()
	}
	var by []string
	for _, ln := range f.val.Content {
		ln = resolve(ln)
		if ln.Kind != yaml.ScalarNode || isNull(ln) {
			p.errorf(ln, w, "by: label names must be strings, not %s", kindName(ln))
			continue
		}
		switch {
		case !labelNameRE.MatchString(ln.Value):
			p.errorf(ln, w, "by: %q is not a valid label name", ln.Value)
		case slices.Contains(by, ln.Value):
			p.errorf(ln, w, "by: label %q listed twice", ln.Value)
		case ln.Value == "alertname":
			p.errorf(ln, w, "by: alertname is the rule's name, not a series label")
		default:
			by = append(by, ln.Value)
		}
	}
	for _, need := range defaultBy() {
		if !slices.Contains(by, need) {
			p.errorf(f.val, w, "by must include %s: aggregating across hosts is not supported yet", need)
		}
	}
	return by
}

// number reads a finite YAML number (not a quoted string).
func (p *parser) number(n *yaml.Node, w where, what string) (float64, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		p.errorf(n, w, "%s must be a number, not %q", what, n.Value)
		return 0, false
	}
	var v float64
	if err := n.Decode(&v); err != nil {
		p.errorf(n, w, "%s: %v", what, err)
		return 0, false
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		p.errorf(n, w, "%s must be a finite number, not %s", what, n.Value)
		return 0, false
	}
	return v, true
}

func (p *parser) duration(fs map[string]field, w where, key string) time.Duration {
	f, ok := fs[key]
	if !ok || isNull(f.val) {
		return 0
	}
	if f.val.Kind != yaml.ScalarNode {
		p.errorf(f.val, w, "%s must be a duration such as 30s or 5m, not %s", key, kindName(f.val))
		return 0
	}
	d, err := time.ParseDuration(f.val.Value)
	if err != nil {
		p.errorf(f.val, w, "%s: %q is not a duration such as 30s, 5m or 1h30m", key, f.val.Value)
		return 0
	}
	if d < 0 {
		p.errorf(f.val, w, "%s must not be negative", key)
		return 0
	}
	return d
}

// stringMap reads a mapping of label names to scalar strings.
func (p *parser) stringMap(fs map[string]field, w where, key string, each func(k, v *yaml.Node)) {
	f, ok := fs[key]
	if !ok || isNull(f.val) {
		return
	}
	if f.val.Kind != yaml.MappingNode {
		p.errorf(f.val, w, "%s must be a mapping of names to strings, not %s", key, kindName(f.val))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(f.val.Content); i += 2 {
		k, v := resolve(f.val.Content[i]), resolve(f.val.Content[i+1])
		switch {
		case k.Kind != yaml.ScalarNode || !labelNameRE.MatchString(k.Value):
			p.errorf(k, w, "%s: %q is not a valid name", key, k.Value)
		case seen[k.Value] > 0:
			p.errorf(k, w, "%s: %q already given at line %d", key, k.Value, seen[k.Value])
		case v.Kind != yaml.ScalarNode || isNull(v):
			seen[k.Value] = k.Line
			p.errorf(v, w, "%s: the value of %q must be a string, not %s", key, k.Value, kindName(v))
		default:
			seen[k.Value] = k.Line
			each(k, v)
		}
	}
}

func (p *parser) labels(fs map[string]field, w where, by []string) map[string]string {
	var out map[string]string
	p.stringMap(fs, w, "labels", func(k, v *yaml.Node) {
		switch {
		case k.Value == "alertname":
			p.errorf(k, w, "labels: alertname is set from the rule's alert name")
		case slices.Contains(by, k.Value):
			p.errorf(k, w, "labels: %q is a by label; a rule label would overwrite it", k.Value)
		case strings.Contains(v.Value, "{{"):
			p.errorf(v, w, "labels: label values are not templates (only annotations are)")
		default:
			if out == nil {
				out = map[string]string{}
			}
			out[k.Value] = v.Value
		}
	})
	return out
}

func (p *parser) annotations(fs map[string]field, w where, by []string) (map[string]string, map[string]*template.Template) {
	var (
		texts map[string]string
		tmpls map[string]*template.Template
	)
	// Templates are tried on a sample alert so that a misspelt field
	// ({{ .Vaule }}) is caught here rather than when the alert fires.
	sample := TemplateData{Labels: map[string]string{"alertname": w.rule}, Value: 1, Threshold: 1}
	for _, l := range by {
		sample.Labels[l] = l
	}
	p.stringMap(fs, w, "annotations", func(k, v *yaml.Node) {
		t, err := newTemplate(k.Value, v.Value)
		if err == nil {
			err = t.Execute(io.Discard, sample)
		}
		if err != nil {
			p.errorf(v, w, "annotation %q: %v", k.Value, err)
			return
		}
		if texts == nil {
			texts, tmpls = map[string]string{}, map[string]*template.Template{}
		}
		texts[k.Value], tmpls[k.Value] = v.Value, t
	})
	return texts, tmpls
}
