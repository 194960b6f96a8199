package wire

import "testing"

func TestValidToken(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"db-1", true}, {"payments", true}, {"", false}, {"a.b", false},
		{"a*", false}, {">", false}, {"a b", false}, {"tab\t", false},
	} {
		if err := ValidToken(tc.in); (err == nil) != tc.ok {
			t.Errorf("ValidToken(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestParseHostSubject(t *testing.T) {
	p, c, h, err := ParseHostSubject(SamplesSubject("pay", "db-1"))
	if err != nil || p != SamplesPrefix || c != "pay" || h != "db-1" {
		t.Fatalf("got %q %q %q %v", p, c, h, err)
	}
	for _, bad := range []string{"mciv.samples.x", "foo.samples.a.b", "mciv.alerts.a.b", "mciv.samples.a.b.c"} {
		if _, _, _, err := ParseHostSubject(bad); err == nil {
			t.Errorf("ParseHostSubject(%q): want error", bad)
		}
	}
}
