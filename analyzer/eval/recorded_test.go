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

// loss is one fault or blip of a recording: its name ("fault 1", "blip
// 3") and when its loss was switched on and off, from t0.
type loss struct {
	name    string
	on, off time.Duration
}

// readRecorded reads the sample batches `make bench-latency` recorded
// (scripts/bench-latency.sh --batches FILE): one line per batch, tab-
// separated, arrival time, start (15:04:05.000 UTC), covered time in
// milliseconds, sequence number, TCP retransmits and resets in it; and
// after each loss a line "# <name>\t<on>\t<off>". The batches are
// returned as host db1's, their starts moved so that the first begins at
// t0, and the losses on the same clock.
func readRecorded(t *testing.T, path string) ([]*wire.Batch, []loss) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out    []*wire.Batch
		losses []loss
		marks  [][]string // loss lines, read once the clock is known
		first  time.Time
		last   time.Time
		day    time.Duration
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if fs := strings.Split(strings.TrimPrefix(line, "# "), "\t"); strings.HasPrefix(line, "# ") && len(fs) == 3 {
			marks = append(marks, fs)
			continue
		}
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
	if len(out) == 0 {
		t.Fatalf("%s: no batches", path)
	}
	// Times of day from the first batch's (a recording is under a day).
	since := func(s string) time.Duration {
		at, err := time.Parse("15:04:05.000", s)
		if err != nil {
			t.Fatalf("%s: loss time %q: %v", path, s, err)
		}
		d := at.Sub(first)
		if d < 0 {
			d += 24 * time.Hour
		}
		return d
	}
	for _, m := range marks {
		losses = append(losses, loss{name: m[0], on: since(m[1]), off: since(m[2])})
	}
	return out, losses
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
		batches, _ := readRecorded(t, path)
		if fired := alertsOf(t, set, batches); len(fired) != 0 {
			t.Errorf("%s: the default rules paged on the quiet period: %v", path, fired)
		}
		hastyFired := strings.Join(alertsOf(t, hasty(set), batches), " ")
		if n := strings.Count(hastyFired, "TCPRetransmitRateHigh@"); n < 5 {
			t.Errorf("%s: without evidence, the retransmit rule fired on %d blips, want at least 5: %s", path, n, hastyFired)
		}
	}
}

// TestDefaultRulesPageOnRecordedFaults replays whole `make bench-latency`
// runs (testdata/latbench-run-*.tsv: faults of 20 % loss, each kept on
// until mciv paged, then the quiet period's blips) through the default
// rules: each fault pages once, while its loss is on (or within the batch
// after: the bench switches it off on the page), and nothing else pages.
func TestDefaultRulesPageOnRecordedFaults(t *testing.T) {
	set, err := rules.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/latbench-run-*.tsv")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings: %v", err)
	}
	for _, path := range files {
		batches, losses := readRecorded(t, path)
		fired := alertsOf(t, set, batches)
		faults := 0
		for _, l := range losses {
			if !strings.HasPrefix(l.name, "fault") {
				continue
			}
			faults++
			n := 0
			for _, f := range fired {
				at, err := time.ParseDuration(strings.TrimPrefix(f, "TCPRetransmitRateHigh@"))
				if err == nil && at >= l.on && at <= l.off+time.Second {
					n++
					t.Logf("%s: %s paged %.2f s after its loss began", path, l.name, (at - l.on).Seconds())
				}
			}
			if n != 1 {
				t.Errorf("%s: %s (%s to %s) paged %d times, want once: %v", path, l.name, l.on, l.off, n, fired)
			}
		}
		if faults == 0 || len(fired) != faults {
			t.Errorf("%s: %d faults, alerts %v: want one per fault and no other", path, faults, fired)
		}
	}
}
