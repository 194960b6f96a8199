package defaultrules_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/detect"
	"github.com/mciv/mciv/rules"
	defaultrules "github.com/mciv/mciv/rules/default"
)

func TestDefaultRulesLoad(t *testing.T) {
	set, err := rules.LoadFS(defaultrules.FS(), ".")
	if err != nil {
		t.Fatalf("default rules do not validate:\n%v", err)
	}
	var r *rules.Rule
	for _, x := range set.Rules() {
		if x.Alert == "TCPRetransmitRateHigh" {
			r = x
		}
	}
	if r == nil {
		t.Fatal("no TCPRetransmitRateHigh rule")
	}
	if r.Signal != "tcp_retransmits_total" || r.Stat != rules.StatRate ||
		strings.Join(r.By, ",") != "cluster,host" ||
		r.Detector != (detect.ThresholdSpec{Op: detect.OpGT, Value: 5}) ||
		r.For != 0 || r.Evidence == nil || *r.Evidence != (rules.Evidence{Need: time.Second, Min: 500 * time.Millisecond, MaxWeight: rules.DefaultEvidenceMaxWeight}) ||
		r.KeepFiringFor != 5*time.Second || r.Labels["severity"] != "warning" {
		t.Fatalf("rule %+v", r)
	}
	ann, err := r.Annotate(rules.TemplateData{
		Labels: map[string]string{"cluster": "payments", "host": "db-1"}, Value: 12.345, Threshold: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := ann["summary"]; !strings.Contains(s, "db-1") || !strings.Contains(s, "12.3/s") {
		t.Errorf("summary %q does not name the host and the rate", s)
	}
	if d := ann["description"]; !strings.Contains(d, "mciv.events.payments.db-1") || !strings.Contains(d, "ethtool") {
		t.Errorf("description is not a runbook: %q", d)
	}
}
