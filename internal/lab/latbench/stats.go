package latbench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Result is what the benchmark measured for one system or setting.
type Result struct {
	// System names it ("mciv", "prometheus fastest").
	System string
	// Setting describes its configuration in a few words.
	Setting string
	// Latencies are fault start to first notification, one per fault it
	// noticed, in fault order.
	Latencies []time.Duration
	// Missed counts faults with no notification within the timeout.
	Missed int
	// QuietAlerts counts firing notifications during the quiet period;
	// -1 if the quiet period did not run.
	QuietAlerts int
	// QuietFrom is when the quiet period began; QuietNotes are its
	// firing notifications (QuietAlerts of them) and QuietExplain the
	// firing notes of the system's Explain feed in the same time.
	QuietFrom                time.Time
	QuietNotes, QuietExplain []Note
	// Stage marks a step inside a system (see System.Stage).
	Stage bool
}

// Summary is the distribution of a result's latencies.
type Summary struct {
	N                int
	Median, Min, Max time.Duration
}

// Summarize returns the median (the mean of the two middle values for an
// even count), minimum and maximum of ds; the zero Summary if empty.
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{N: len(s), Median: m, Min: s[0], Max: s[len(s)-1]}
}

// Table renders results as a Markdown table: one row per system, with the
// fault→notification median, min and max in seconds, the faults noticed
// (and missed) and the quiet-period alerts.
func Table(results []Result) string {
	var b strings.Builder
	b.WriteString("| system | setting | faults noticed | median | min | max | quiet-period alerts |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		s := Summarize(r.Latencies)
		noticed := fmt.Sprintf("%d of %d", s.N, s.N+r.Missed)
		med, lo, hi := "–", "–", "–"
		if s.N > 0 {
			med, lo, hi = seconds(s.Median), seconds(s.Min), seconds(s.Max)
		}
		quiet := "not run"
		switch {
		case r.Stage:
			quiet = "(a stage)"
		case r.QuietAlerts >= 0:
			quiet = fmt.Sprint(r.QuietAlerts)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.System, r.Setting, noticed, med, lo, hi, quiet)
	}
	return b.String()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// QuietReport lists every alert of the quiet period, system by system:
// its time (UTC, and seconds into the quiet period) and what it said,
// with the notes that explain it (the rule and labels of mciv's alert on
// the bus). It returns "" when no system paged.
func QuietReport(results []Result) string {
	var b strings.Builder
	for _, r := range results {
		if len(r.QuietNotes) == 0 && len(r.QuietExplain) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s: %d quiet-period alerts\n", r.System, r.QuietAlerts)
		for _, n := range r.QuietNotes {
			fmt.Fprintf(&b, "- %s (+%.1f s) %s\n", n.At.UTC().Format("15:04:05.000"), n.At.Sub(r.QuietFrom).Seconds(), n.What)
		}
		for _, n := range r.QuietExplain {
			fmt.Fprintf(&b, "  - %s (+%.1f s) %s\n", n.At.UTC().Format("15:04:05.000"), n.At.Sub(r.QuietFrom).Seconds(), n.What)
		}
	}
	return b.String()
}
