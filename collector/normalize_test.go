package collector

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestNormalizeQuery(t *testing.T) {
	cases := []struct{ in, want string }{
		{"SELECT * FROM users WHERE id = 42 AND name = 'bob'", "SELECT * FROM users WHERE id = $1 AND name = $2"},
		{"select pg_sleep(0.05)", "select pg_sleep($1)"},
		{"SELECT 1", "SELECT $1"},
		{"SELECT * FROM t1 WHERE x IN (1, 2, 3) AND y IN ('a','b')", "SELECT * FROM t1 WHERE x IN ($1) AND y IN ($2)"},
		{"SELECT * FROM t WHERE x IN (SELECT a FROM b)", "SELECT * FROM t WHERE x IN (SELECT a FROM b)"},
		{"INSERT INTO t VALUES ($1, $2)", "INSERT INTO t VALUES ($1, $2)"},
		{"SELECT 'it''s', E'a\\'b', -1.5e-3, 0x1F, .5", "SELECT $1, $2, -$3, $4, $5"},
		{"SELECT $tag$secret 99$tag$, $$x$$", "SELECT $1, $2"},
		{"SELECT \"Col 1\" FROM \"T\" -- secret 7\nWHERE a = /* 8 /* 9 */ */ 10", "SELECT \"Col 1\" FROM \"T\" WHERE a = $1"},
		{"SELECT x'ff', B'0101', N'nat', U&'d\\0061t'", "SELECT $1, $2, $3, $4"},
		{"SELECT * FROM t WHERE name = 'unterminated secr", "SELECT * FROM t WHERE name = $1"},
		{"  SELECT\n\t1  ", "SELECT $1"},
		{"SELECT DATE '2024-01-02', interval '5 days'", "SELECT DATE $1, interval $2"},
	}
	for _, c := range cases {
		if got := normalizeQuery(c.in); got != c.want {
			t.Errorf("normalizeQuery(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// TestNormalizeQueryLeaksNoLiteral builds queries from templates with
// random literals and checks that no digit and no quoted text of the
// input survives (the templates carry no digits of their own).
func TestNormalizeQueryLeaksNoLiteral(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '\\%_-"
		n := 3 + r.IntN(12)
		var b strings.Builder
		b.WriteString("zq") // a marker that no template contains
		for range n {
			b.WriteByte(letters[r.IntN(len(letters))])
		}
		return b.String()
	}
	num := func() string {
		switch r.IntN(4) {
		case 0:
			return fmt.Sprint(r.Int64())
		case 1:
			return fmt.Sprintf("%g", r.Float64()*1e6)
		case 2:
			return fmt.Sprintf("%de%d", r.IntN(100), r.IntN(20))
		}
		return fmt.Sprintf("0x%X", r.Uint32())
	}
	str := func() string {
		w := word()
		switch r.IntN(3) {
		case 0:
			return "'" + strings.ReplaceAll(w, "'", "''") + "'"
		case 1:
			return "E'" + strings.ReplaceAll(strings.ReplaceAll(w, `\`, `\\`), "'", `\'`) + "'"
		}
		return "$q$" + w + "$q$"
	}
	templates := []func() string{
		func() string { return fmt.Sprintf("SELECT * FROM users WHERE id = %s AND name = %s", num(), str()) },
		func() string {
			return fmt.Sprintf("UPDATE t SET a = %s, b = %s WHERE c IN (%s, %s, %s)", str(), num(), num(), str(), num())
		},
		func() string { return fmt.Sprintf("INSERT INTO t (a, b) VALUES (%s, -%s)", str(), num()) },
		func() string { return fmt.Sprintf("SELECT pg_sleep(%s) -- %s\n/* %s */", num(), str(), num()) },
	}
	for i := range 20000 {
		q := templates[i%len(templates)]()
		if i%7 == 0 {
			q = q[:r.IntN(len(q)+1)] // cut short like the kernel's bounded copy
		}
		got := normalizeQuery(q)
		// Placeholders are the only digits allowed.
		stripped := strings.Map(func(c rune) rune {
			if c == '$' {
				return -1
			}
			return c
		}, got)
		for _, f := range strings.FieldsFunc(stripped, func(c rune) bool { return !(c >= '0' && c <= '9') }) {
			if !strings.Contains(got, "$"+f) {
				t.Fatalf("digits %q survive in %q (from %q)", f, got, q)
			}
		}
		if strings.Contains(got, "zq") || strings.Contains(got, "'") {
			t.Fatalf("quoted text survives in %q (from %q)", got, q)
		}
	}
}

func FuzzNormalizeQuery(f *testing.F) {
	f.Add("SELECT * FROM users WHERE id = 42 AND name = 'bob'")
	f.Add("SELECT $a$ x $a$, E'\\'', 1e5")
	f.Fuzz(func(t *testing.T, q string) {
		got := normalizeQuery(q)
		if !strings.Contains(q, `"`) && strings.Contains(got, "'") {
			t.Fatalf("a quote survives: %q -> %q", q, got)
		}
	})
}
