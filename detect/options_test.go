package detect

import (
	"reflect"
	"testing"
	"time"
)

// TestOptionsSetTheirField checks the one table of options: every option
// a type lists changes its Config, text options refuse unknown words, and
// every listed type builds a spec with defaults.
func TestOptionsSetTheirField(t *testing.T) {
	seen := map[string]bool{}
	for _, typ := range Types() {
		opts := Options(typ)
		if len(opts) == 0 {
			t.Fatalf("%s: no options", typ)
		}
		if got := OptionNames(typ); len(got) != len(opts) {
			t.Errorf("%s: %d names for %d options", typ, len(got), len(opts))
		}
		for _, o := range opts {
			seen[o.Name] = true
			var c Config
			v := Value{Duration: time.Minute, Number: 3, Count: 9, Text: "up"}
			if o.Name == "op" {
				v.Text = ">"
			}
			if err := o.Set(&c, v); err != nil {
				t.Errorf("%s.%s: %v", typ, o.Name, err)
			}
			if reflect.DeepEqual(c, Config{}) {
				t.Errorf("%s.%s: Set changed nothing", typ, o.Name)
			}
			if o.Kind == KindText {
				if err := o.Set(&c, Value{Text: "sideways"}); err == nil {
					t.Errorf("%s.%s accepted %q", typ, o.Name, "sideways")
				}
			}
		}
	}
	if len(seen) != len(optionTable()) {
		t.Errorf("%d options used by the types, %d in the table", len(seen), len(optionTable()))
	}
	if Options("nope") != nil || OptionNames("nope") != nil {
		t.Error("unknown type has options")
	}
}
