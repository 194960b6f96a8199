package detect

import (
	"fmt"
	"slices"
	"time"
)

// OptionKind is the kind of value a detector option takes in a rules file.
type OptionKind int

// The kinds of option values.
const (
	// KindDuration is a positive duration (30m, 7d).
	KindDuration OptionKind = iota
	// KindNumber is a finite number.
	KindNumber
	// KindCount is a positive whole number.
	KindCount
	// KindText is a word parsed by the option itself (op, direction).
	KindText
)

// Value is one option's value as read from a rules file: the field that
// matches the option's Kind is set.
type Value struct {
	Duration time.Duration
	Number   float64
	Count    int
	Text     string
}

// Option describes one detector option: its rules-file key, the kind of
// value it takes and the Config field it sets.
type Option struct {
	// Name is the key in a rules file's detector mapping.
	Name string
	// Kind is the kind of value the key takes.
	Kind OptionKind
	// ZeroAllowed is true where 0 is a meaningful value; elsewhere a 0
	// in a file is an error, since in Config 0 means "the default".
	ZeroAllowed bool
	set         func(*Config, Value) error
}

// Set stores v in the Config field the option names. Text options return
// an error for a word they do not know.
func (o Option) Set(c *Config, v Value) error { return o.set(c, v) }

func durationOpt(name string, field func(*Config) *time.Duration) Option {
	return Option{Name: name, Kind: KindDuration, set: func(c *Config, v Value) error {
		*field(c) = v.Duration
		return nil
	}}
}

func numberOpt(name string, zeroAllowed bool, field func(*Config) *float64) Option {
	return Option{Name: name, Kind: KindNumber, ZeroAllowed: zeroAllowed, set: func(c *Config, v Value) error {
		*field(c) = v.Number
		return nil
	}}
}

// optionTable is every detector option, by name.
func optionTable() map[string]Option {
	opts := []Option{
		durationOpt("baseline", func(c *Config) *time.Duration { return &c.Baseline }),
		durationOpt("warmup", func(c *Config) *time.Duration { return &c.Warmup }),
		durationOpt("window", func(c *Config) *time.Duration { return &c.Window }),
		durationOpt("for", func(c *Config) *time.Duration { return &c.For }),
		durationOpt("slot", func(c *Config) *time.Duration { return &c.Slot }),
		durationOpt("period", func(c *Config) *time.Duration { return &c.Period }),
		numberOpt("threshold", false, func(c *Config) *float64 { return &c.Threshold }),
		numberOpt("min_delta", true, func(c *Config) *float64 { return &c.MinDelta }),
		numberOpt("hysteresis", false, func(c *Config) *float64 { return &c.Hysteresis }),
		numberOpt("lambda", false, func(c *Config) *float64 { return &c.Lambda }),
		numberOpt("k", false, func(c *Config) *float64 { return &c.K }),
		numberOpt("value", true, func(c *Config) *float64 { return &c.Value }),
		{Name: "clear", Kind: KindNumber, ZeroAllowed: true, set: func(c *Config, v Value) error {
			x := v.Number
			c.Clear = &x
			return nil
		}},
		{Name: "samples", Kind: KindCount, set: func(c *Config, v Value) error {
			c.Samples = v.Count
			return nil
		}},
		{Name: "baseline_samples", Kind: KindCount, set: func(c *Config, v Value) error {
			c.BaselineSamples = v.Count
			return nil
		}},
		{Name: "warmup_samples", Kind: KindCount, set: func(c *Config, v Value) error {
			c.WarmupSamples = v.Count
			return nil
		}},
		{Name: "direction", Kind: KindText, set: func(c *Config, v Value) error {
			d, err := ParseDirection(v.Text)
			c.Direction = d
			return err
		}},
		{Name: "op", Kind: KindText, set: func(c *Config, v Value) error {
			op, err := ParseOp(v.Text)
			c.Op = op
			return err
		}},
	}
	m := make(map[string]Option, len(opts))
	for _, o := range opts {
		m[o.Name] = o
	}
	return m
}

// typeOptions is the one table of detector types and the options each
// accepts, in the order documentation shows them.
func typeOptions() []struct {
	typ  string
	opts []string
} {
	common := []string{"baseline", "threshold", "warmup", "direction", "min_delta", "hysteresis", "baseline_samples", "warmup_samples"}
	with := func(extra ...string) []string { return append(slices.Clip(common), extra...) }
	return []struct {
		typ  string
		opts []string
	}{
		{"threshold", []string{"op", "value", "clear"}},
		{"auto", common},
		{"zscore", common},
		{"robust_zscore", with("samples")},
		{"ewma", with("lambda")},
		{"cusum", with("k")},
		{"seasonal", with("slot", "period")},
		{"rate_of_change", []string{"window", "threshold", "warmup", "direction", "min_delta", "hysteresis", "warmup_samples"}},
		{"absence", []string{"for"}},
	}
}

// Types lists the detector types, in the order documentation shows them.
func Types() []string {
	var out []string
	for _, t := range typeOptions() {
		out = append(out, t.typ)
	}
	return out
}

// Options lists the options (rules-file keys, besides "type") that a
// detector type accepts, or nil for an unknown type.
func Options(typ string) []Option {
	table := optionTable()
	for _, t := range typeOptions() {
		if t.typ != typ {
			continue
		}
		out := make([]Option, len(t.opts))
		for i, name := range t.opts {
			o, ok := table[name]
			if !ok {
				panic(fmt.Sprintf("detect: type %s lists unknown option %q", typ, name))
			}
			out[i] = o
		}
		return out
	}
	return nil
}

// OptionNames lists the names of Options(typ).
func OptionNames(typ string) []string {
	var out []string
	for _, o := range Options(typ) {
		out = append(out, o.Name)
	}
	return out
}
