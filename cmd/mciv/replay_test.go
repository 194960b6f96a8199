package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReplayCSV(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "retrans.csv")
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	for i := range 20 {
		v := "1"
		if i >= 5 && i < 10 {
			v = "12"
		}
		b.WriteString(time.Unix(1700000000+int64(i), 0).UTC().Format(time.RFC3339) + "," + v + "\n")
	}
	if err := os.WriteFile(csv, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, "replay", "--rules", "../../rules/default", "--csv", csv, "--signal", "tcp_retransmits_total", "--jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rows, transitions []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if _, ok := m["transition"]; ok {
			transitions = append(transitions, m)
		} else {
			rows = append(rows, m)
		}
	}
	if len(rows) != 20 || rows[5]["firing"] != true || rows[4]["firing"] != false {
		t.Fatalf("rows: %v", rows)
	}
	var got []string
	for _, tr := range transitions {
		got = append(got, tr["transition"].(string))
	}
	// TCPRetransmitRateHigh (evidence {need: 1s, min: 750ms}): seen at
	// row 5, firing at row 6 once it persisted, resolved 5s after row 9.
	if strings.Join(got, ",") != "firing,resolved" || transitions[0]["ts"] != 1.700000006e+09 {
		t.Fatalf("transitions %v", transitions)
	}

	if out, code := run(t, "replay", "--csv", csv); code == 0 || !strings.Contains(out, "--jsonl") {
		t.Fatalf("without --jsonl: %d %s", code, out)
	}
	if out, code := run(t, "replay", "--jsonl", "--csv", csv, "--samples", csv); code == 0 || !strings.Contains(out, "exactly one") {
		t.Fatalf("both inputs: %d %s", code, out)
	}
}
