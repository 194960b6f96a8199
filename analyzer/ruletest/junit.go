package ruletest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes results as JUnit XML: one testsuite per file, one
// testcase per test; a file that could not be run is one errored testcase.
func WriteJUnit(w io.Writer, results []FileResult) error {
	var out junitSuites
	for _, r := range results {
		s := junitSuite{Name: r.File}
		if len(r.Errors) > 0 {
			var msgs []string
			for _, e := range r.Errors {
				msgs = append(msgs, e.Error())
			}
			s.Cases = append(s.Cases, junitCase{Name: "load", Classname: r.File, Time: "0",
				Error: &junitMessage{Message: "test file could not be run", Text: strings.Join(msgs, "\n")}})
			s.Errors++
		}
		for _, t := range r.Tests {
			c := junitCase{Name: t.Name, Classname: r.File, Time: fmt.Sprintf("%.3f", t.Duration.Seconds())}
			if len(t.Failures) > 0 {
				c.Failure = &junitMessage{Message: fmt.Sprintf("%d expectation(s) failed", len(t.Failures)), Text: strings.Join(t.Failures, "\n")}
				s.Failures++
			}
			s.Cases = append(s.Cases, c)
		}
		s.Tests = len(s.Cases)
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
