package speech

import (
	"fmt"
	"strings"
	"text/template"
)

// Funcs are the functions a voice template can call besides Go's
// built-ins:
//
//	duration SECONDS      "850 milliseconds"
//	number V              "1.23", "12300", "1.5 million"
//	rate V                "12 per second"
//	percent RATIO         "25 percent"
//	bytes V               "1.5 kilobytes"
//	times V BASELINE      "6 times"
//	quantity SIGNAL STAT V   V in the signal's unit, as the default sentence says it
//	spell NAME            "d b 1"
//	stat STAT             "99th percentile"
//	signal NAME           "query latency"
//	phrase ID             "query latency anomaly"
//	upper, lower, title   change case ("title" upper-cases the first letter)
//
// A template example, for the annotation "voice":
//
//	{{.Spoken.Severity}}. Replication lag on {{spell .Labels.host}} is {{duration .Value}}.
func Funcs() template.FuncMap {
	return template.FuncMap{
		"duration": Duration,
		"number":   Number,
		"rate":     Rate,
		"percent":  Percent,
		"bytes":    Bytes,
		"times":    Times,
		"quantity": Quantity,
		"spell":    Spell,
		"stat":     Stat,
		"signal":   Signal,
		"phrase":   Phrase,
		"upper":    strings.ToUpper,
		"lower":    strings.ToLower,
		"title":    capitalizeFirst,
	}
}

// parse parses a voice template. A missing label renders as "".
func parse(text string) (*template.Template, error) {
	t, err := template.New("voice").Funcs(Funcs()).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return t, nil
}

// CheckTemplate parses text as a voice template and executes it on a
// sample alert, so that rule checks can report a broken template before an
// alert needs it.
func CheckTemplate(text string) error {
	t, err := parse(text)
	if err != nil {
		return err
	}
	d := &Data{
		Rule: "Sample", State: "firing", Severity: "critical", Signal: "db_query_seconds", Stat: "p99",
		Labels:      map[string]string{LabelSeverity: "critical", LabelHost: "db-1", LabelCluster: "payments"},
		Annotations: map[string]string{},
		Value:       0.85, Threshold: 0.5, Baseline: 0.14, Score: 0.9,
	}
	if err := t.Execute(new(strings.Builder), d); err != nil {
		return fmt.Errorf("execute: %w", err)
	}
	return nil
}

// execute renders the voice template text with d, on one line.
func execute(text string, d *Data) (string, error) {
	t, err := parse(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("execute: %w", err)
	}
	return oneLine(b.String()), nil
}
