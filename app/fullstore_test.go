package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/lab/storelab"
	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
	"github.com/mciv/mciv/notifier/nflog"
	"github.com/mciv/mciv/notifier/silence"
	"github.com/prometheus/client_golang/prometheus"
)

// metricWith is the value of the counter or gauge name whose labels
// include want (0 when there is none).
func metricWith(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestFullStoreKeepsDelivering is the full store: the notifier's
// buckets (notification log and silences) and the analyzer's alert state
// bucket are full, as a flood of alerts leaves them. An alert still is
// announced and reaches the console and the voice clip, and the failed
// writes are counted by bucket.
func TestFullStoreKeepsDelivering(t *testing.T) {
	testenv.RequireCommand(t, "espeak-ng", "sox")
	l := startTrustLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	admin := l.admin(t)
	for _, b := range []string{nflog.Bucket, silence.Bucket, analyzer.StateBucket} {
		n, err := storelab.Fill(ctx, admin.js, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("bucket %s filled with %d bytes", b, n)
	}

	col := l.connect(t, auth.Collector, "db-1")
	for seq := uint64(1); ; seq++ {
		if err := col.nc.Publish(wire.SamplesSubject(labCluster, "db-1"), batch("db-1", seq, 50)); err != nil {
			t.Fatal(err)
		}
		_ = col.nc.Flush()
		if strings.Contains(l.console.String(), "db-1") &&
			metricWith(t, l.reg, "mciv_notifier_notifications_total", map[string]string{"integration": "voice", "result": "success"}) > 0 {
			break
		}
		if seq > 150 {
			t.Fatalf("no delivery to the console and voice after %d batches with a full store; console: %q", seq, l.console.String())
		}
		time.Sleep(200 * time.Millisecond) // pacing the collector's interval, not a timing assertion
	}
	if got := metricWith(t, l.reg, "mciv_notifier_state_failures_total", map[string]string{"bucket": nflog.Bucket, "op": "write"}); got < 1 {
		t.Errorf("failed notification-log writes counted: %v, want at least 1", got)
	}
	if got := metricSum(t, l.reg, "mciv_analyzer_state_write_failures_total"); got < 1 {
		t.Errorf("alert states refused by the full state bucket counted: %v, want at least 1", got)
	}
	if got := metricSum(t, l.reg, "mciv_analyzer_alerts_queued"); got != 0 {
		t.Errorf("%v alert changes still queued: a full state bucket held back the announcements", got)
	}
	if got := metricWith(t, l.reg, "mciv_notifier_messages_total", map[string]string{"integration": "console", "outcome": "acked"}); got < 1 {
		t.Errorf("console messages acked: %v", got)
	}
}
