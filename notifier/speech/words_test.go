package speech

import (
	"math"
	"testing"
)

func TestNumber(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{12, "12"},
		{850, "850"},
		{850.4, "850"},
		{1.2, "1.2"},
		{1.234, "1.23"},
		{12.345, "12.3"},
		{0.0405, "0.0405"},
		{0.040512, "0.0405"},
		{1234.5, "1230"},
		{12345, "12300"},
		{999.6, "1000"},
		{999999, "1 million"},
		{1.5e6, "1.5 million"},
		{2.345e9, "2.35 billion"},
		{-3, "minus 3"},
		{math.NaN(), "not a number"},
		{math.Inf(1), "infinity"},
	} {
		if got := Number(tc.in); got != tc.want {
			t.Errorf("Number(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0.85, "850 milliseconds"},
		{1.2, "1.2 seconds"},
		{0.00004, "40 microseconds"},
		{0.000000250, "250 nanoseconds"},
		{1, "1 second"},
		{0.001, "1 millisecond"},
		{0.9996, "1 second"},
		{0.0123456, "12.3 milliseconds"},
		{90, "90 seconds"},
		{119, "119 seconds"},
		{120, "2 minutes"},
		{900, "15 minutes"},
		{5400, "90 minutes"},
		{7200, "2 hours"},
		{3 * 86400, "3 days"},
		{0, "0 seconds"},
		{-0.5, "minus 500 milliseconds"},
	} {
		if got := Duration(tc.in); got != tc.want {
			t.Errorf("Duration(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnits(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"rate", Rate(12), "12 per second"},
		{"rate fraction", Rate(0.25), "0.25 per second"},
		{"percent", Percent(0.25), "25 percent"},
		{"bytes", Bytes(1536), "1.5 kilobytes"},
		{"bytes one", Bytes(1), "1 byte"},
		{"bytes giga", Bytes(3 << 30), "3 gigabytes"},
		{"times", Times(5.1, 0.85), "6 times"},
		{"times decimal", Times(2.46, 1), "2.5 times"},
		{"times big", Times(1234, 10), "123 times"},
		{"times one", Times(1, 1), "1 time"},
		{"times no baseline", Times(5, 0), ""},
		{"times tiny", Times(0.01, 1), "0.01 times"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestStat(t *testing.T) {
	for in, want := range map[string]string{
		"p99":    "99th percentile",
		"p95":    "95th percentile",
		"p50":    "median",
		"p90":    "90th percentile",
		"p1":     "1st percentile",
		"p11":    "11th percentile",
		"p22":    "22nd percentile",
		"p33":    "33rd percentile",
		"p999":   "99.9th percentile",
		"p99.9":  "99.9th percentile",
		"P99":    "99th percentile",
		"max":    "maximum",
		"avg":    "average",
		"mean":   "average",
		"rate":   "rate",
		"stddev": "standard deviation",
		"":       "",
		"my_odd": "my odd",
		"pfoo":   "pfoo",
	} {
		if got := Stat(in); got != want {
			t.Errorf("Stat(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignal(t *testing.T) {
	for in, want := range map[string]string{
		"db_query_seconds":        "query latency",
		"tcp_retransmits_total":   "TCP retransmits",
		"tcp_rtt_seconds":         "TCP round trip time",
		"disk_io_seconds":         "disk latency",
		"replication_lag_seconds": "replication lag",
		"db_connections_total":    "database connections",
		"cpu_usage_ratio":         "CPU usage",
		"seconds":                 "seconds",
	} {
		if got := Signal(in); got != want {
			t.Errorf("Signal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuantity(t *testing.T) {
	for _, tc := range []struct {
		signal, stat string
		v            float64
		want         string
	}{
		{"db_query_seconds", "p99", 0.85, "850 milliseconds"},
		{"tcp_retransmits_total", "rate", 12, "12 per second"},
		{"tcp_retransmits_total", "", 12, "12 per second"},
		{"db_slow_queries", "count", 7, "7"},
		{"db_slow_queries", "rate", 0.5, "0.5 per second"},
		{"mem_used_bytes", "max", 1536, "1.5 kilobytes"},
		{"disk_busy_ratio", "avg", 0.93, "93 percent"},
		{"queue_depth", "max", 17, "17"},
	} {
		if got := Quantity(tc.signal, tc.stat, tc.v); got != tc.want {
			t.Errorf("Quantity(%q, %q, %v) = %q, want %q", tc.signal, tc.stat, tc.v, got, tc.want)
		}
	}
}

func TestSpell(t *testing.T) {
	for in, want := range map[string]string{
		"db-1":                 "d b 1",
		"pg-primary-02":        "p g primary 0 2",
		"payments":             "payments",
		"eu-west-1":            "e u west 1",
		"db1":                  "d b 1",
		"node17":               "node 1 7",
		"mysql3":               "m y s q l 3",
		"pg_replica.dc2.local": "p g replica d c 2 local",
		"":                     "",
		"--":                   "",
		"Redis":                "Redis",
		"SQL":                  "S Q L",
		"köln-1":               "köln 1",
	} {
		if got := Spell(in); got != want {
			t.Errorf("Spell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPhrase(t *testing.T) {
	for in, want := range map[string]string{
		"QueryLatencyAnomaly": "query latency anomaly",
		"host_down":           "host down",
		"TCPResets":           "TCP resets",
		"HostDown2":           "host down2",
		"critical":            "critical",
		"":                    "",
	} {
		if got := Phrase(in); got != want {
			t.Errorf("Phrase(%q) = %q, want %q", in, got, want)
		}
	}
}
