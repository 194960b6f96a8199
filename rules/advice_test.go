package rules

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAdvice(t *testing.T) {
	src := `groups:
  - name: g
    rules:
      - alert: RetransmitsFor
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
        for: 2s
      - alert: RetransmitsEvidence
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
        evidence: {need: 1s, min: 750ms}
      - alert: RetransmitsNoFor
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: threshold, op: ">", value: 5}
      - alert: RetransmitsAuto
        signal: tcp_retransmits_total
        stat: rate
        detector: {type: auto}
        for: 5s
      - alert: QueriesFor
        signal: db_query_seconds
        stat: rate
        detector: {type: threshold, op: ">", value: 500}
        for: 2s
      - alert: ResetsCountFor
        signal: tcp_resets_total
        stat: count
        detector: {type: threshold, op: ">", value: 10}
        for: 1s
`
	path := filepath.Join(writeFiles(t, map[string]string{"r.yaml": src}), "r.yaml")
	set, err := LoadFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	adv := set.Advice()
	if len(adv) != 2 || adv[0].Rule != "RetransmitsFor" || adv[1].Rule != "ResetsCountFor" {
		t.Fatalf("advice: %v", adv)
	}
	if got := adv[0].Error(); !strings.HasPrefix(got, path+":4:") || !strings.Contains(got, "for: 2s on the rate of tcp_retransmits_total") ||
		!strings.Contains(got, "evidence: {need: 1s, min: 750ms}") {
		t.Errorf("advice text: %s", got)
	}
}

func TestDefaultRulesNeedNoAdvice(t *testing.T) {
	set, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if adv := set.Advice(); len(adv) != 0 {
		t.Errorf("the default rules get advice: %v", adv)
	}
}
