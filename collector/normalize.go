package collector

import (
	"strconv"
	"strings"
)

// normalizeQuery replaces every literal of an SQL text with a numbered
// placeholder ($1, $2, ...) so that no user data leaves the host: quoted
// strings (with E, B, X, N, U& prefixes), dollar-quoted strings, numbers,
// and the parameters the text already had. Lists of literals after IN
// become one placeholder; comments are dropped; whitespace is collapsed.
// A text cut short (the kernel copies a bounded prefix) that ends inside
// a literal or comment loses the unfinished part.
func normalizeQuery(q string) string {
	toks := lexSQL(q)
	toks = collapseInLists(toks)
	var b strings.Builder
	n := 0
	prevSpace := true
	for _, t := range toks {
		switch t.kind {
		case tokSpace:
			if !prevSpace {
				b.WriteByte(' ')
				prevSpace = true
			}
			continue
		case tokLiteral:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteString(t.text)
		}
		prevSpace = false
	}
	return strings.TrimRight(b.String(), " ")
}

type tokKind uint8

const (
	tokWord tokKind = iota // keyword or identifier (maybe quoted)
	tokLiteral
	tokPunct
	tokSpace
)

type sqlTok struct {
	kind tokKind
	text string // empty for literals: their text never leaves lexSQL
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '$' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lexSQL splits q into tokens, literals without their text.
func lexSQL(q string) []sqlTok {
	var toks []sqlTok
	lit := sqlTok{kind: tokLiteral}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			toks = append(toks, sqlTok{kind: tokSpace})
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
			toks = append(toks, sqlTok{kind: tokSpace})
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			i = skipBlockComment(q, i)
			toks = append(toks, sqlTok{kind: tokSpace})
		case c == '\'':
			i = skipQuoted(q, i, false)
			toks = append(toks, lit)
		case c == '"':
			j := skipDoubleQuoted(q, i)
			toks = append(toks, sqlTok{kind: tokWord, text: q[i:j]})
			i = j
		case c == '$' && i+1 < len(q) && isDigit(q[i+1]):
			i++
			for i < len(q) && isDigit(q[i]) {
				i++
			}
			toks = append(toks, lit)
		case c == '$':
			if j, ok := skipDollarQuoted(q, i); ok {
				toks = append(toks, lit)
				i = j
			} else {
				toks = append(toks, sqlTok{kind: tokPunct, text: "$"})
				i++
			}
		case isDigit(c) || c == '.' && i+1 < len(q) && isDigit(q[i+1]):
			i = skipNumber(q, i)
			toks = append(toks, lit)
		case isIdentStart(c):
			j := i
			for j < len(q) && isIdentChar(q[j]) {
				j++
			}
			word := q[i:j]
			// A prefixed string: E'..', B'..', X'..', N'..', U&'..'.
			if j < len(q) && q[j] == '\'' && len(word) == 1 && strings.ContainsAny(word, "eEbBxXnN") {
				i = skipQuoted(q, j, word == "e" || word == "E")
				toks = append(toks, lit)
				continue
			}
			if (word == "u" || word == "U") && j+1 < len(q) && q[j] == '&' && q[j+1] == '\'' {
				i = skipQuoted(q, j+1, false)
				toks = append(toks, lit)
				continue
			}
			toks = append(toks, sqlTok{kind: tokWord, text: word})
			i = j
		default:
			toks = append(toks, sqlTok{kind: tokPunct, text: q[i : i+1]})
			i++
		}
	}
	return toks
}

// skipQuoted returns the index after the single-quoted string starting at
// q[i]; backslash escapes count only in E strings. Unterminated: len(q).
func skipQuoted(q string, i int, backslash bool) int {
	for i++; i < len(q); i++ {
		switch {
		case backslash && q[i] == '\\':
			i++
		case q[i] == '\'':
			if i+1 < len(q) && q[i+1] == '\'' {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(q)
}

func skipDoubleQuoted(q string, i int) int {
	for i++; i < len(q); i++ {
		if q[i] == '"' {
			if i+1 < len(q) && q[i+1] == '"' {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(q)
}

// skipDollarQuoted skips $tag$...$tag$ starting at q[i], if it is one.
func skipDollarQuoted(q string, i int) (int, bool) {
	j := i + 1
	for j < len(q) && q[j] != '$' {
		if !isIdentChar(q[j]) || q[j] == '$' || j == i+1 && !isIdentStart(q[j]) {
			return 0, false
		}
		j++
	}
	if j >= len(q) {
		return 0, false
	}
	tag := q[i : j+1]
	if end := strings.Index(q[j+1:], tag); end >= 0 {
		return j + 1 + end + len(tag), true
	}
	return len(q), true
}

func skipBlockComment(q string, i int) int {
	depth := 0
	for i < len(q) {
		switch {
		case strings.HasPrefix(q[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(q[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(q)
}

// skipNumber skips a numeric constant: digits, a fraction, an exponent,
// hex/octal/binary prefixes and underscores.
func skipNumber(q string, i int) int {
	for i < len(q) {
		c := q[i]
		switch {
		case isDigit(c) || c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			if (c == 'e' || c == 'E') && i+1 < len(q) && (q[i+1] == '+' || q[i+1] == '-') {
				i++
			}
			i++
		default:
			return i
		}
	}
	return i
}

// collapseInLists turns IN ( literal, literal, ... ) into IN ( literal ).
func collapseInLists(toks []sqlTok) []sqlTok {
	out := make([]sqlTok, 0, len(toks))
	for i := 0; i < len(toks); i++ {
		out = append(out, toks[i])
		if toks[i].kind != tokWord || !strings.EqualFold(toks[i].text, "in") {
			continue
		}
		j := i + 1
		for j < len(toks) && toks[j].kind == tokSpace {
			j++
		}
		if j >= len(toks) || toks[j].text != "(" {
			continue
		}
		k, lits := j+1, 0
		for ; k < len(toks); k++ {
			t := toks[k]
			if t.kind == tokLiteral {
				lits++
				continue
			}
			if t.kind == tokSpace || t.text == "," || t.text == "-" || t.text == "+" {
				continue
			}
			break
		}
		if lits == 0 || k >= len(toks) || toks[k].text != ")" {
			continue
		}
		out = append(out, sqlTok{kind: tokSpace}, sqlTok{kind: tokPunct, text: "("}, sqlTok{kind: tokLiteral}, sqlTok{kind: tokPunct, text: ")"})
		i = k
	}
	return out
}
