package replay

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/rules"
)

// FuzzReadSamples: a samples file (mciv record) never panics the reader.
func FuzzReadSamples(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("garbage\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ReadSamples(bytes.NewReader(data), func(time.Time, []byte) error { return nil })
	})
}

// FuzzReadCSV: any CSV (and value column choice) never panics the CSV
// replay; it replays or returns an error.
func FuzzReadCSV(f *testing.F) {
	set, err := rules.LoadDefault()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("timestamp,value\n2026-03-01T12:00:00Z,1\n2026-03-01T12:00:01Z,2.5\n", "")
	f.Add("ts,a,b\n1772366400,1,2\n1772366401,NaN,\n", "b")
	f.Add("time,value\n1772366400.5,1e308\n1772366399,-Inf\n", "2")
	f.Add("\"unterminated,value\n", "")
	f.Add("", "value")
	f.Fuzz(func(t *testing.T, data, column string) {
		_, _ = CSVWith(strings.NewReader(data), set, CSVOptions{Signal: "db_query_seconds", ValueColumn: column}, io.Discard)
	})
}
