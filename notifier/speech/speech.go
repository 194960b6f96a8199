// Package speech turns an alert into the words a person would say about it
// on the phone: severity first, the statistic and signal as words, values in
// their units ("850 milliseconds", "12 per second"), the ratio to the usual
// value, and host names spelled so that a listener understands them ("d b
// 1"). Rules can replace the default sentence with a Go template in the
// annotation "voice".
//
// The package only makes text (and SSML); notifier/tts turns it into audio.
package speech

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/mciv/mciv/internal/wire"
)

// Alert labels and annotations the spoken text uses.
const (
	LabelSeverity = "severity"
	LabelHost     = "host"
	LabelCluster  = "cluster"
	LabelInstance = "instance"

	// AnnotationVoice holds a rule's template for the spoken text.
	AnnotationVoice = "voice"
)

// Text returns what a person would say about a: the rule's "voice"
// template when it has one that renders, else the default sentence, e.g.
// "Critical. 99th percentile query latency 850 milliseconds, 6 times its
// usual value, on host d b 1 in cluster payments."
func Text(a *wire.Alert) string {
	s, _ := Render(a)
	return s
}

// Render is Text that also reports why the rule's voice template could not
// be used (it does not parse, fails to execute, or renders nothing): the
// returned text is then the default sentence, so a broken template never
// silences an alert.
func Render(a *wire.Alert) (string, error) {
	if a == nil {
		return "", errors.New("speech: no alert")
	}
	d := newData(a)
	tmpl := strings.TrimSpace(a.Annotations[AnnotationVoice])
	if tmpl == "" {
		return d.Default, nil
	}
	s, err := execute(tmpl, d)
	if err != nil {
		return d.Default, fmt.Errorf("speech: voice template of rule %q: %w", a.Rule, err)
	}
	if s == "" {
		return d.Default, fmt.Errorf("speech: voice template of rule %q renders nothing", a.Rule)
	}
	return s, nil
}

// Data is what a voice template sees as ".".
type Data struct {
	Rule     string
	State    string // "firing" or "resolved"
	Severity string // the severity label as it is ("critical")
	Signal   string // "db_query_seconds"
	Stat     string // "p99"

	Labels      map[string]string
	Annotations map[string]string

	Value     float64
	Threshold float64
	Baseline  float64
	Score     float64

	// Spoken has the same facts already said as words.
	Spoken Spoken
	// Default is the sentence said when the rule has no voice template,
	// so that a template can add to it: "{{.Default}} Runbook: restart it."
	Default string
}

// Spoken holds the alert's facts as they are said.
type Spoken struct {
	State     string // "Critical", "Warning", ... or "Resolved"
	Severity  string // "Critical" ("Alert" when the label is missing)
	Stat      string // "99th percentile"
	Signal    string // "query latency"
	Value     string // "850 milliseconds"
	Threshold string // "500 milliseconds"
	Baseline  string // "140 milliseconds"
	Ratio     string // "6 times its usual value", or ""
	Host      string // "d b 1"
	Cluster   string // "payments"
	Instance  string // spelled like Host
}

// newData gathers what the default sentence and templates say.
func newData(a *wire.Alert) *Data {
	d := &Data{
		Rule:        a.Rule,
		State:       string(a.State),
		Severity:    a.Labels[LabelSeverity],
		Signal:      a.Signal,
		Stat:        a.Stat,
		Labels:      a.Labels,
		Annotations: a.Annotations,
		Value:       a.Value,
		Threshold:   a.Threshold,
		Baseline:    a.Baseline,
		Score:       a.Score,
	}
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	sp := &d.Spoken
	sp.Severity = capitalizeFirst(Phrase(d.Severity))
	if sp.Severity == "" {
		sp.Severity = "Alert"
	}
	sp.State = sp.Severity
	if a.State == wire.StateResolved {
		sp.State = "Resolved"
	}
	sp.Stat = Stat(a.Stat)
	sp.Signal = Signal(a.Signal)
	sp.Value = Quantity(a.Signal, a.Stat, a.Value)
	sp.Threshold = Quantity(a.Signal, a.Stat, a.Threshold)
	if a.Baseline != 0 {
		sp.Baseline = Quantity(a.Signal, a.Stat, a.Baseline)
	}
	sp.Ratio = ratioPhrase(a.Value, a.Baseline)
	sp.Host = Spell(d.Labels[LabelHost])
	sp.Cluster = Spell(d.Labels[LabelCluster])
	sp.Instance = Spell(d.Labels[LabelInstance])
	d.Default = defaultText(a, sp)
	return d
}

// defaultText builds the sentence said when the rule has no template:
//
//	Critical. 99th percentile query latency 850 milliseconds, 6 times its usual value, on host d b 1 in cluster payments.
//	Resolved. 99th percentile query latency on host d b 1 in cluster payments is back to 120 milliseconds.
func defaultText(a *wire.Alert, sp *Spoken) string {
	var b strings.Builder
	b.WriteString(sp.State)
	b.WriteString(". ")

	what := sp.Signal
	if a.Signal == "" {
		what = Phrase(a.Rule)
	} else if st := sp.Stat; st != "" && st != "rate" && st != "value" && st != "last" {
		what = st + " " + what
	}
	b.WriteString(capitalizeFirst(what))

	where := ""
	if sp.Host != "" {
		where += " on host " + sp.Host
	}
	if sp.Cluster != "" {
		where += " in cluster " + sp.Cluster
	}

	switch {
	case a.Signal == "":
		b.WriteString(where)
	case a.State == wire.StateResolved:
		b.WriteString(where)
		b.WriteString(" is back to ")
		b.WriteString(sp.Value)
	default:
		b.WriteString(" ")
		b.WriteString(sp.Value)
		if sp.Ratio != "" {
			b.WriteString(", ")
			b.WriteString(sp.Ratio)
		}
		if where != "" {
			b.WriteString(",")
			b.WriteString(where)
		}
	}
	b.WriteString(".")
	return oneLine(b.String())
}

// ratioPhrase says how value compares with baseline, or "" when the
// comparison says nothing (no baseline, or within 10% of it).
func ratioPhrase(value, baseline float64) string {
	if baseline <= 0 {
		return ""
	}
	r := value / baseline
	switch {
	case r >= 1.1:
		if t := Times(value, baseline); t != "" {
			return t + " its usual value"
		}
	case r <= 0.9 && r >= 0:
		return Percent(r) + " of its usual value"
	}
	return ""
}

// Phrase turns an identifier into words: "QueryLatencyAnomaly" → "query
// latency anomaly", "host_down" → "host down". All-capital runs stay
// ("TCPResets" → "TCP resets").
func Phrase(id string) string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	rs := []rune(id)
	for i, r := range rs {
		if r == '_' || r == '-' || r == '.' || unicode.IsSpace(r) {
			flush()
			continue
		}
		if unicode.IsUpper(r) && len(cur) > 0 {
			prevLower := unicode.IsLower(cur[len(cur)-1]) || unicode.IsDigit(cur[len(cur)-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || nextLower {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	for i, w := range words {
		if !isAllUpper(w) {
			words[i] = strings.ToLower(w)
		}
	}
	return strings.Join(words, " ")
}

// isAllUpper reports whether w has more than one letter and all of them
// are upper case (an acronym).
func isAllUpper(w string) bool {
	n := 0
	for _, r := range w {
		if unicode.IsLetter(r) {
			if !unicode.IsUpper(r) {
				return false
			}
			n++
		}
	}
	return n > 1
}

// capitalizeFirst upper-cases the first rune of s.
func capitalizeFirst(s string) string {
	for i, r := range s {
		return string(unicode.ToUpper(r)) + s[i+len(string(r)):]
	}
	return s
}

// oneLine collapses runs of white space into single spaces and removes a
// space before punctuation.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for _, p := range []string{" .", " ,"} {
		s = strings.ReplaceAll(s, p, p[1:])
	}
	return s
}
