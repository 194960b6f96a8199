package speech

import (
	"math"
	"strconv"
	"strings"
	"unicode"
)

// Number returns v as a person would read it out: rounded to three
// significant digits ("850", "1.23", "12300"), with million and billion
// said as words ("1.5 million"). The digits are left as digits: every
// speech engine reads them as a number.
func Number(v float64) string {
	switch {
	case math.IsNaN(v):
		return "not a number"
	case math.IsInf(v, 1):
		return "infinity"
	case math.IsInf(v, -1):
		return "minus infinity"
	}
	sign := ""
	if v < 0 {
		sign = "minus "
		v = -v
	}
	r := roundSig(v, 3)
	switch {
	case r == 0:
		return "0"
	case r >= 1e12:
		return sign + trimFloat(roundSig(r/1e12, 3)) + " trillion"
	case r >= 1e9:
		return sign + trimFloat(r/1e9) + " billion"
	case r >= 1e6:
		return sign + trimFloat(r/1e6) + " million"
	}
	return sign + trimFloat(r)
}

// roundSig rounds v (>= 0) to n significant digits.
func roundSig(v float64, n int) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	exp := int(math.Floor(math.Log10(v)))
	p := math.Pow10(exp - n + 1)
	return math.Round(v/p) * p
}

// trimFloat formats a value already rounded to three significant digits
// without exponent and without trailing zeros ("12300", "1.2", "0.0405").
func trimFloat(v float64) string {
	if v == 0 {
		return "0"
	}
	exp := int(math.Floor(math.Log10(math.Abs(v))))
	s := strconv.FormatFloat(v, 'f', max(2-exp, 0), 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// unit is a spoken unit with its singular and plural forms.
type unit struct {
	scale            float64
	singular, plural string
}

// durationUnits are tried from the largest down: a value is said in the
// first unit in which it is at least 1, or at least 2 for minutes, hours
// and days (people say "90 seconds", not "1.5 minutes").
var durationUnits = []unit{
	{86400, "day", "days"},
	{3600, "hour", "hours"},
	{60, "minute", "minutes"},
	{1, "second", "seconds"},
	{1e-3, "millisecond", "milliseconds"},
	{1e-6, "microsecond", "microseconds"},
	{1e-9, "nanosecond", "nanoseconds"},
}

// Duration says a number of seconds in the unit a person would pick:
// 0.85 → "850 milliseconds", 1.2 → "1.2 seconds", 0.00004 → "40
// microseconds", 90 → "90 seconds", 900 → "15 minutes".
func Duration(seconds float64) string {
	if math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return Number(seconds) + " seconds"
	}
	sign := ""
	if seconds < 0 {
		sign = "minus "
		seconds = -seconds
	}
	r := roundSig(seconds, 3)
	if r == 0 {
		return "0 seconds"
	}
	for i, u := range durationUnits {
		least := u.scale
		if u.scale > 1 {
			least = 2 * u.scale // "90 seconds", "2 minutes"
		}
		if r >= least || i == len(durationUnits)-1 {
			return sign + withUnit(r/u.scale, u)
		}
	}
	panic("unreachable")
}

// withUnit says v followed by the singular or plural unit.
func withUnit(v float64, u unit) string {
	n := Number(v)
	if n == "1" {
		return n + " " + u.singular
	}
	return n + " " + u.plural
}

// Rate says a per-second rate: 12 → "12 per second".
func Rate(perSecond float64) string {
	return Number(perSecond) + " per second"
}

// Percent says a ratio as a percentage: 0.25 → "25 percent".
func Percent(ratio float64) string {
	return Number(ratio*100) + " percent"
}

var byteUnits = []unit{
	{1 << 40, "terabyte", "terabytes"},
	{1 << 30, "gigabyte", "gigabytes"},
	{1 << 20, "megabyte", "megabytes"},
	{1 << 10, "kilobyte", "kilobytes"},
	{1, "byte", "bytes"},
}

// Bytes says a size in bytes in binary units: 1536 → "1.5 kilobytes".
func Bytes(b float64) string {
	if math.IsNaN(b) || math.IsInf(b, 0) || b < 0 {
		return Number(b) + " bytes"
	}
	for _, u := range byteUnits {
		if roundSig(b, 3) >= u.scale {
			return withUnit(b/u.scale, u)
		}
	}
	return withUnit(b, byteUnits[len(byteUnits)-1])
}

// Times says how many times larger value is than baseline: (5.1, 0.85) →
// "6 times", (2.46, 1) → "2.5 times". It returns "" when the ratio has no
// meaning (a zero, negative or missing baseline).
func Times(value, baseline float64) string {
	if baseline <= 0 || math.IsNaN(baseline) || math.IsNaN(value) || math.IsInf(value, 0) || math.IsInf(baseline, 0) {
		return ""
	}
	r := value / baseline
	var s string
	if r >= 10 {
		s = Number(math.Round(r))
	} else {
		s = trimFloat(math.Round(r*10) / 10)
		if s == "0" && r > 0 {
			s = Number(r)
		}
	}
	if s == "1" {
		return "1 time"
	}
	return s + " times"
}

// Stat says a statistic's name as words: "p99" → "99th percentile", "p50"
// → "median", "p99.9" (or "p999") → "99.9th percentile", "max" →
// "maximum". Unknown names are returned with underscores as spaces.
func Stat(stat string) string {
	s := strings.ToLower(strings.TrimSpace(stat))
	switch s {
	case "":
		return ""
	case "p50", "median":
		return "median"
	case "mean", "avg", "average":
		return "average"
	case "max", "maximum":
		return "maximum"
	case "min", "minimum":
		return "minimum"
	case "sum", "total":
		return "total"
	case "stddev", "stdev", "sd":
		return "standard deviation"
	case "count", "rate", "last", "value":
		return s
	}
	if q, ok := strings.CutPrefix(s, "p"); ok && q != "" && isNumber(q) {
		// "p999" is Prometheus shorthand for 99.9, "p9999" for 99.99.
		if !strings.Contains(q, ".") && len(q) > 2 && strings.Trim(q, "9") == "" {
			q = q[:2] + "." + q[2:]
		}
		return q + ordinalSuffix(q) + " percentile"
	}
	return strings.ReplaceAll(stat, "_", " ")
}

// isNumber reports whether s is digits with at most one dot.
func isNumber(s string) bool {
	dots := 0
	for _, r := range s {
		switch {
		case r == '.':
			dots++
		case r < '0' || r > '9':
			return false
		}
	}
	return dots <= 1 && s != "."
}

// ordinalSuffix returns the English ordinal suffix for the number written
// in n ("1" → "st", "12" → "th", "99.9" → "th").
func ordinalSuffix(n string) string {
	if strings.Contains(n, ".") {
		return "th"
	}
	if len(n) >= 2 && n[len(n)-2] == '1' {
		return "th"
	}
	switch n[len(n)-1] {
	case '1':
		return "st"
	case '2':
		return "nd"
	case '3':
		return "rd"
	}
	return "th"
}

// signalNames are the spoken names of the signals mciv's collector
// publishes (see DESIGN.md, Probes).
var signalNames = map[string]string{
	"db_query_seconds":         "query latency",
	"db_slow_queries":          "slow queries",
	"tcp_retransmits_total":    "TCP retransmits",
	"tcp_resets_total":         "TCP resets",
	"tcp_connect_seconds":      "TCP connect time",
	"tcp_connect_errors_total": "TCP connect errors",
	"tcp_rtt_seconds":          "TCP round trip time",
	"disk_io_seconds":          "disk latency",
}

// signalWords are how parts of unknown signal names are said.
var signalWords = map[string]string{
	"db":   "database",
	"tcp":  "TCP",
	"udp":  "UDP",
	"cpu":  "CPU",
	"io":   "I O",
	"rtt":  "round trip time",
	"conn": "connection",
	"repl": "replication",
	"tx":   "transmit",
	"rx":   "receive",
}

// unitSuffixes are stripped from unknown signal names: the value says the
// unit ("850 milliseconds"), the name need not.
var unitSuffixes = []string{"_seconds", "_total", "_bytes", "_ratio", "_count"}

// Signal says a signal's name as words: "db_query_seconds" → "query
// latency", "tcp_retransmits_total" → "TCP retransmits"; an unknown
// "replication_lag_seconds" → "replication lag".
func Signal(name string) string {
	if s, ok := signalNames[name]; ok {
		return s
	}
	base := name
	for _, suf := range unitSuffixes {
		if b, ok := strings.CutSuffix(base, suf); ok && b != "" {
			base = b
			break
		}
	}
	var words []string
	for _, w := range strings.FieldsFunc(base, func(r rune) bool { return r == '_' || r == '.' || r == ':' || r == '-' }) {
		if s, ok := signalWords[strings.ToLower(w)]; ok {
			w = s
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// Quantity says a value of signal (with statistic stat) in its unit, read
// from the signal's name as Prometheus names base units: "_seconds" →
// Duration, "_total" or stat "rate" → Rate, "_bytes" → Bytes, "_ratio" →
// Percent, anything else → Number. A "count" is always a plain number.
func Quantity(signal, stat string, v float64) string {
	st := strings.ToLower(stat)
	switch {
	case st == "count":
		return Number(v)
	case st == "rate" || strings.HasSuffix(signal, "_total"):
		return Rate(v)
	case strings.HasSuffix(signal, "_seconds"):
		return Duration(v)
	case strings.HasSuffix(signal, "_bytes"):
		return Bytes(v)
	case strings.HasSuffix(signal, "_ratio"):
		return Percent(v)
	}
	return Number(v)
}

// Spell makes a host or cluster name understandable when read out: it is
// split at "-", "_", "." and other punctuation and where letters meet
// digits; digits are said one by one, and short tokens (three letters or
// fewer) or tokens without a vowel are spelled letter by letter, while
// word-like tokens stay whole: "db-1" → "d b 1", "pg-primary-02" → "p g
// primary 0 2", "mysql3" → "m y s q l 3".
func Spell(name string) string {
	var out []string
	for _, tok := range splitName(name) {
		out = append(out, spellToken(tok)...)
	}
	return strings.Join(out, " ")
}

// splitName splits a name into runs of letters and runs of digits; every
// other character separates tokens.
func splitName(name string) []string {
	var toks []string
	var cur []rune
	kind := 0 // 1 letters, 2 digits
	flush := func() {
		if len(cur) > 0 {
			toks = append(toks, string(cur))
			cur = cur[:0]
		}
		kind = 0
	}
	for _, r := range name {
		k := 0
		switch {
		case unicode.IsLetter(r):
			k = 1
		case unicode.IsDigit(r):
			k = 2
		}
		if k == 0 {
			flush()
			continue
		}
		if k != kind {
			flush()
		}
		kind = k
		cur = append(cur, r)
	}
	flush()
	return toks
}

// spellToken returns the spoken parts of one letter or digit run.
func spellToken(tok string) []string {
	runes := []rune(tok)
	if unicode.IsDigit(runes[0]) || len(runes) <= 3 || !hasVowel(tok) {
		parts := make([]string, len(runes))
		for i, r := range runes {
			parts[i] = string(r)
		}
		return parts
	}
	return []string{tok}
}

// hasVowel reports whether s has a vowel (a, e, i, o, u: "mysql" has none
// and is spelled), or is not plain ASCII (a word in another script is left
// for the engine to read).
func hasVowel(s string) bool {
	for _, r := range strings.ToLower(s) {
		if r > unicode.MaxASCII || strings.ContainsRune("aeiou", r) {
			return true
		}
	}
	return false
}
