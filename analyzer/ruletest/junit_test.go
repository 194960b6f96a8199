package ruletest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"testing"
	"time"
)

func TestWriteJUnitFileErrors(t *testing.T) {
	var buf bytes.Buffer
	err := WriteJUnit(&buf, []FileResult{
		{File: "a.yaml", Errors: []error{errors.New("a.yaml:3:1: bad")}},
		{File: "b.yaml", Tests: []TestResult{{Name: "ok", Duration: 1500 * time.Millisecond}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 2 || doc.Errors != 1 || doc.Failures != 0 || len(doc.Suites) != 2 ||
		doc.Suites[0].Cases[0].Error == nil || doc.Suites[0].Cases[0].Error.Text != "a.yaml:3:1: bad" ||
		doc.Suites[1].Cases[0].Time != "1.500" {
		t.Fatalf("%s", buf.String())
	}
}
