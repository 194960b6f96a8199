package latbench

import (
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range v {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	for _, tc := range []struct {
		in   []time.Duration
		want Summary
	}{
		{nil, Summary{}},
		{ms(900), Summary{N: 1, Median: 900 * time.Millisecond, Min: 900 * time.Millisecond, Max: 900 * time.Millisecond}},
		{ms(3000, 1000, 2000), Summary{N: 3, Median: 2 * time.Second, Min: time.Second, Max: 3 * time.Second}},
		{ms(4000, 1000, 2000, 3000), Summary{N: 4, Median: 2500 * time.Millisecond, Min: time.Second, Max: 4 * time.Second}},
	} {
		if got := Summarize(tc.in); got != tc.want {
			t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	in := ms(3000, 1000, 2000)
	Summarize(in)
	if in[0] != 3*time.Second {
		t.Error("Summarize sorted its argument in place")
	}
}

func TestTable(t *testing.T) {
	got := Table([]Result{
		{System: "mciv", Setting: "default rules", Latencies: []time.Duration{800 * time.Millisecond, 1200 * time.Millisecond, time.Second}, QuietAlerts: 0},
		{System: "prometheus", Setting: "typical", Missed: 2, QuietAlerts: -1},
		{System: "mciv (stage)", Setting: "alert on the bus", Latencies: []time.Duration{time.Second}, QuietAlerts: -1, Stage: true},
	})
	for _, want := range []string{
		"| mciv | default rules | 3 of 3 | 1.00 s | 0.80 s | 1.20 s | 0 |",
		"| prometheus | typical | 0 of 2 | – | – | – | not run |",
		"| mciv (stage) | alert on the bus | 1 of 1 | 1.00 s | 1.00 s | 1.00 s | (a stage) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestQuietReport(t *testing.T) {
	from := time.Date(2026, 12, 6, 23, 40, 0, 0, time.UTC)
	got := QuietReport([]Result{
		{System: "mciv", QuietAlerts: 1, QuietFrom: from,
			QuietNotes:   []Note{{At: from.Add(95500 * time.Millisecond), Firing: true, What: "[FIRING] TCPRetransmitRateHigh on db"}},
			QuietExplain: []Note{{At: from.Add(95400 * time.Millisecond), Firing: true, What: "alert TCPRetransmitRateHigh firing {host=db}"}}},
		{System: "quiet one", QuietAlerts: 0, QuietFrom: from},
		{System: "not run", QuietAlerts: -1},
	})
	for _, want := range []string{
		"mciv: 1 quiet-period alerts\n",
		"- 23:41:35.500 (+95.5 s) [FIRING] TCPRetransmitRateHigh on db\n",
		"  - 23:41:35.400 (+95.4 s) alert TCPRetransmitRateHigh firing {host=db}\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet one") || strings.Contains(got, "not run") {
		t.Errorf("report lists systems that did not page:\n%s", got)
	}
	if QuietReport([]Result{{System: "x", QuietAlerts: 0}}) != "" {
		t.Error("a quiet run has a report")
	}
}
