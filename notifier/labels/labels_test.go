package labels

import (
	"encoding/json"
	"testing"

	"github.com/mciv/mciv/internal/wire"
)

func TestParseAndMatch(t *testing.T) {
	ls := map[string]string{"host": "db-1", "severity": "critical", "alertname": "X"}
	for _, tc := range []struct {
		in    string
		match bool
	}{
		{"host=db-1", true},
		{`host="db-1"`, true},
		{"host!=db-1", false},
		{`host=~"db-.*"`, true},
		{`host=~"db"`, false}, // anchored
		{`host!~"web-.*"`, true},
		{"missing=", true},
		{"missing!=", false},
		{" severity = critical ", true},
	} {
		m, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if got := m.Matches(ls); got != tc.match {
			t.Errorf("%q.Matches = %v, want %v", tc.in, got, tc.match)
		}
		back, err := Parse(m.String())
		if err != nil || back.String() != m.String() {
			t.Errorf("round trip of %q: %v %v", tc.in, back, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "host", "=x", "1host=x", `host=~"("`, `host="unterminated`} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func TestJSONRoundTripKeepsRegexp(t *testing.T) {
	ms := Matchers{MustParse(`host=~"db-.*"`)}
	b, err := json.Marshal(ms)
	if err != nil {
		t.Fatal(err)
	}
	var back Matchers
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Matches(map[string]string{"host": "db-7"}) || back.Matches(map[string]string{"host": "web"}) {
		t.Errorf("decoded matchers %v match wrongly", back)
	}
}

func TestOfAddsAlertName(t *testing.T) {
	ls := Of(&wire.Alert{Rule: "R", Labels: map[string]string{"host": "h"}})
	if ls[AlertName] != "R" || ls["host"] != "h" {
		t.Errorf("Of = %v", ls)
	}
}
