package notifier

import (
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
)

func TestStateText(t *testing.T) {
	for in, want := range map[wire.AlertState]string{wire.StateFiring: "FIRING", wire.StateResolved: "RESOLVED", "pending": "PENDING"} {
		if got := StateText(in); got != want {
			t.Errorf("StateText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for in, want := range map[float64]string{12.3: "12.3", 5: "5", 0.1 + 0.2: "0.3", 1.5e6: "1.5e+06", 123456: "123456", -0.00042: "-0.00042", 0: "0"} {
		if got := FormatValue(in); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine("  a\n\tb  c\r\n"); got != "a b c" {
		t.Errorf("OneLine = %q", got)
	}
}

func TestBackoff(t *testing.T) {
	d := NewDispatcher(DispatcherConfig{RetryMin: time.Second, RetryMax: 10 * time.Second}, nil, nil, nil)
	for _, c := range []struct {
		n       uint64
		atLeast time.Duration
		want    time.Duration
	}{
		{1, 0, time.Second},
		{2, 0, 2 * time.Second},
		{4, 0, 8 * time.Second},
		{5, 0, 10 * time.Second},
		{1000, 0, 10 * time.Second},
		{1, 30 * time.Second, 30 * time.Second}, // Slack's Retry-After wins
	} {
		if got := d.backoff(c.n, c.atLeast); got != c.want {
			t.Errorf("backoff(%d, %s) = %s, want %s", c.n, c.atLeast, got, c.want)
		}
	}
}

func TestBadReason(t *testing.T) {
	for in, want := range map[string]string{
		"garbage":            reasonMalformed,
		"":                   reasonMalformed,
		"null":               reasonMalformed,
		`["v",1]`:            reasonMalformed,
		`{"rule":"R"}`:       reasonMalformed,
		`{"v":2,"rule":"R"}`: reasonSchemaVersion,
		`{"v":1,"rule":"R"}`: reasonInvalid,
		`{"v":1,"rule":"R","fingerprint":"f","state":"x"}`: reasonInvalid,
	} {
		if got := badReason([]byte(in)); got != want {
			t.Errorf("badReason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := DispatcherConfig{}.withDefaults()
	if c.Durable != DefaultDurable || c.AckWait != 30*time.Second || c.MaxDeliver != -1 ||
		c.NotifyTimeout != time.Minute || c.RetryMin != time.Second || c.RetryMax != time.Minute || c.Now == nil {
		t.Errorf("defaults %+v", c)
	}
	if c := (DispatcherConfig{RetryMin: time.Minute, RetryMax: time.Second}).withDefaults(); c.RetryMax != time.Minute {
		t.Errorf("RetryMax below RetryMin kept: %+v", c)
	}
}
