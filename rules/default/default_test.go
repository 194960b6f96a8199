package defaultrules_test

import (
	"math"
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
		r.For != 0 || r.Evidence == nil || *r.Evidence != (rules.Evidence{Need: time.Second, Min: 750 * time.Millisecond, MaxWeight: rules.DefaultEvidenceMaxWeight}) ||
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

// TestQueryRateAnomaly: the query rate rule pages a fall of the rate as
// well as a surge, once it lasts its for, and a single odd interval
// does not page.
func TestQueryRateAnomaly(t *testing.T) {
	set, err := rules.LoadFS(defaultrules.FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var r *rules.Rule
	for _, x := range set.Rules() {
		if x.Alert == "QueryRateAnomaly" {
			r = x
		}
	}
	if r == nil || r.Stat != rules.StatRate || r.For <= 0 {
		t.Fatalf("rule %+v", r)
	}
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	// firstPage runs the rule's detector over 3 h of ~200 queries/s at
	// 1-minute steps with change applied from 2 h on, and returns the
	// first interval at which the detector has fired for r.For, or -1.
	firstPage := func(change func(i int, v float64) float64) int {
		d := r.Detector.New()
		var since time.Time
		for i := range 180 {
			v := 200 + 10*math.Sin(float64(i)*1.7) // deterministic wiggle
			if i >= 120 {
				v = change(i-120, v)
			}
			at := t0.Add(time.Duration(i) * time.Minute)
			res := d.Observe(at, v)
			switch {
			case !res.Firing:
				since = time.Time{}
			case since.IsZero():
				since = at
			}
			if !since.IsZero() && at.Sub(since) >= r.For {
				return i
			}
		}
		return -1
	}
	if got := firstPage(func(_ int, v float64) float64 { return v / 10 }); got < 120 || got > 125 {
		t.Errorf("a fall to a tenth pages at %d, want soon after 120", got)
	}
	if got := firstPage(func(_ int, v float64) float64 { return v * 3 }); got < 120 || got > 125 {
		t.Errorf("a surge to three times pages at %d, want soon after 120", got)
	}
	if got := firstPage(func(i int, v float64) float64 {
		if i == 0 {
			return v * 5
		}
		return v
	}); got != -1 {
		t.Errorf("one odd interval pages at %d", got)
	}
}
