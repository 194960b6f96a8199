package speech

import (
	"strings"
)

// ssmlEscaper escapes the characters that are markup in SSML (XML).
var ssmlEscaper = strings.NewReplacer(
	"&", "&amp;",
	"<", "&lt;",
	">", "&gt;",
	`"`, "&quot;",
	"'", "&apos;",
)

// SSML wraps plain text in a <speak> document for engines that take SSML
// input, escaping everything in text that would be markup, so that alert
// text can never inject tags. Each sentence becomes an <s> element, which
// engines pause after.
func SSML(text string) string {
	var b strings.Builder
	b.WriteString("<speak>")
	for _, s := range sentences(oneLine(text)) {
		b.WriteString("<s>")
		b.WriteString(ssmlEscaper.Replace(s))
		b.WriteString("</s>")
	}
	b.WriteString("</speak>")
	return b.String()
}

// sentences splits text after ". ", "! " and "? " (a dot inside "1.2" or
// "db.local" does not end a sentence).
func sentences(text string) []string {
	var out []string
	start := 0
	for i := 0; i < len(text)-1; i++ {
		if (text[i] == '.' || text[i] == '!' || text[i] == '?') && text[i+1] == ' ' {
			out = append(out, text[start:i+1])
			start = i + 2
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}
