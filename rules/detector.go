package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mciv/mciv/detect"
)

// detector parses a `detector:` mapping: its type, then every option the
// type accepts (detect.Options), each checked for its kind here and for its
// range by detect.NewSpec; every error points at the offending node.
func (p *parser) detector(n *yaml.Node, w where) detect.Spec {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, w, `detector must be a mapping such as {type: robust_zscore, baseline: 30m, threshold: 4}, not %s`, kindName(n))
		return nil
	}
	tn := typeNode(n)
	if tn == nil || isNull(tn) {
		at := n
		if tn != nil {
			at = tn
		}
		p.errorf(at, w, "detector: missing required key %q", "type")
		return nil
	}
	if tn.Kind != yaml.ScalarNode {
		p.errorf(tn, w, "detector type must be a string, not %s", kindName(tn))
		return nil
	}
	typ := tn.Value
	opts := detect.Options(typ)
	names := detect.OptionNames(typ)
	if opts == nil {
		p.errorf(tn, w, "unknown detector type %q (supported: %s)", typ, strings.Join(detect.Types(), ", "))
		return nil
	}
	fs := p.mapping(n, w, typ+" detector", append([]string{"type"}, names...))
	if fs == nil {
		return nil
	}
	c := detect.Config{Type: typ}
	ok := true
	if typ == "threshold" {
		for _, key := range []string{"op", "value"} {
			if _, present := p.required(fs, n, w, "detector: ", key); !present {
				ok = false
			}
		}
	}
	for _, opt := range opts {
		f, present := fs[opt.Name]
		if !present || isNull(f.val) {
			continue
		}
		if !p.detectorOption(&c, opt, f.val, w) {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	spec, err := detect.NewSpec(c)
	if err != nil {
		at := n
		var oe *detect.OptionError
		if errors.As(err, &oe) {
			if f, present := fs[oe.Option]; present {
				at = f.val
			}
		}
		p.errorf(at, w, "detector: %v", err)
		return nil
	}
	return spec
}

// detectorOption reads the value of one detector option into c, checking
// it for the kind of value the option takes (detect's table of options).
func (p *parser) detectorOption(c *detect.Config, opt detect.Option, v *yaml.Node, w where) bool {
	key := opt.Name
	var val detect.Value
	switch opt.Kind {
	case detect.KindDuration:
		d, ok := p.detectorDuration(v, w, key)
		if !ok {
			return false
		}
		val.Duration = d
	case detect.KindNumber:
		x, ok := p.number(v, w, "detector "+key)
		if !ok {
			return false
		}
		if x == 0 && !opt.ZeroAllowed {
			// 0 would silently mean "default" to detect.NewSpec.
			p.errorf(v, w, "detector %s must be positive", key)
			return false
		}
		val.Number = x
	case detect.KindCount:
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
			p.errorf(v, w, "detector %s must be a whole number, not %q", key, v.Value)
			return false
		}
		n, err := strconv.Atoi(v.Value)
		if err != nil || n <= 0 {
			p.errorf(v, w, "detector %s must be a positive whole number, not %s", key, v.Value)
			return false
		}
		val.Count = n
	case detect.KindText:
		if v.Kind != yaml.ScalarNode {
			p.errorf(v, w, "detector %s must be a string, not %s", key, kindName(v))
			return false
		}
		val.Text = v.Value
	}
	if err := opt.Set(c, val); err != nil {
		p.errorf(v, w, "detector: %v", err)
		return false
	}
	return true
}

// promDurationRE splits a Prometheus-style duration's weeks and days from
// the rest, which time.ParseDuration reads.
var promDurationRE = regexp.MustCompile(`^(?:(\d+)w)?(?:(\d+)d)?(.*)$`)

// detectorDuration reads a positive duration; besides Go's units it takes
// d (24h) and w (7d) as Prometheus does: 7d, 1w, 1d12h.
func (p *parser) detectorDuration(v *yaml.Node, w where, key string) (time.Duration, bool) {
	if v.Kind != yaml.ScalarNode {
		p.errorf(v, w, "detector %s must be a duration such as 30m or 7d, not %s", key, kindName(v))
		return 0, false
	}
	d, err := parseLongDuration(v.Value)
	if err != nil {
		p.errorf(v, w, "detector %s: %q is not a duration such as 30s, 5m, 1h30m or 7d", key, v.Value)
		return 0, false
	}
	if d <= 0 {
		p.errorf(v, w, "detector %s must be positive", key)
		return 0, false
	}
	return d, true
}

// parseLongDuration parses a Go duration with optional leading w and d units.
func parseLongDuration(s string) (time.Duration, error) {
	m := promDurationRE.FindStringSubmatch(s)
	if m == nil || s == "" {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	var d time.Duration
	for i, unit := range []time.Duration{7 * 24 * time.Hour, 24 * time.Hour} {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.Atoi(m[i+1])
		if err != nil || n > 1000 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		d += time.Duration(n) * unit
	}
	if m[3] != "" {
		rest, err := time.ParseDuration(m[3])
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: %w", s, err)
		}
		d += rest
	}
	return d, nil
}

// typeNode is the value node of a detector's type key, or nil.
func typeNode(n *yaml.Node) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if resolve(n.Content[i]).Value == "type" {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}
