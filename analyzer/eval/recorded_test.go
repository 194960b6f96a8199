package eval

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/rules"
)

// readRecorded reads the sample batches `make bench-latency` recorded
// (scripts/bench-latency.sh --batches FILE): one line per batch, tab-
// separated, arrival time, start (15:04:05.000 UTC), covered time in
// milliseconds, sequence number, TCP retransmits and resets in it. The
// batches are returned as host db1's, their starts moved so that the
// first begins at t0.
func readRecorded(t *testing.T, path string) []*wire.Batch {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out   []*wire.Batch
		first time.Time
		last  time.Time
		day   time.Duration
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Split(line, "\t")
		if len(fs) != 6 {
			t.Fatalf("%s:%d: %d fields, want 6", path, n, len(fs))
		}
		start, err := time.Parse("15:04:05.000", fs[1])
		if err != nil {
			t.Fatalf("%s:%d: start: %v", path, n, err)
		}
		ms, err1 := strconv.Atoi(fs[2])
		seq, err2 := strconv.ParseUint(fs[3], 10, 64)
		retrans, err3 := strconv.ParseFloat(fs[4], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("%s:%d: %q: want milliseconds, a sequence number and a count", path, n, line)
		}
		start = start.Add(day)
		if !last.IsZero() && start.Before(last.Add(-time.Hour)) { // past midnight
			day += 24 * time.Hour
			start = start.Add(24 * time.Hour)
		}
		last = start
		if first.IsZero() {
			first = start
		}
		b := &wire.Batch{Cluster: "c", Host: "db1", Seq: seq, Start: t0.Add(start.Sub(first)),
			Interval: time.Duration(ms) * time.Millisecond}
		if retrans > 0 {
			b.Series = append(b.Series, retrans1(retrans))
		}
		out = append(out, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDefaultRulesQuietOnRecordedBlips replays the quiet periods of
// `make bench-latency` runs (testdata/latbench-quiet-*.tsv, recorded with
// --batches: 300 ms blips of 20 % loss every 20–40 s) through the
// default rules: no alert, while the retransmit rule without its evidence
// fires on the blips (the recording holds what the rule judges).
func TestDefaultRulesQuietOnRecordedBlips(t *testing.T) {
	set, err := rules.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/latbench-quiet-*.tsv")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings: %v", err)
	}
	for _, path := range files {
		batches := readRecorded(t, path)
		if fired := alertsOf(t, set, batches); len(fired) != 0 {
			t.Errorf("%s: the default rules paged on the quiet period: %v", path, fired)
		}
		hastyFired := strings.Join(alertsOf(t, hasty(set), batches), " ")
		if n := strings.Count(hastyFired, "TCPRetransmitRateHigh@"); n < 5 {
			t.Errorf("%s: without evidence, the retransmit rule fired on %d blips, want at least 5: %s", path, n, hastyFired)
		}
	}
}
