package detect

import (
	"errors"
	"testing"
)

func TestParseDirection(t *testing.T) {
	for _, s := range []string{"up", "down", "both"} {
		if d, err := ParseDirection(s); err != nil || string(d) != s {
			t.Errorf("%s: %v %v", s, d, err)
		}
	}
	if _, err := ParseDirection("Up"); err == nil {
		t.Error("Up: no error")
	}
}

func TestOptionError(t *testing.T) {
	inner := errors.New("too big")
	err := error(&OptionError{Option: "k", Err: inner})
	if err.Error() != "k: too big" || !errors.Is(err, inner) {
		t.Fatalf("%v", err)
	}
	if len(Types()) != 9 {
		t.Fatalf("types %v", Types())
	}
}
