package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegisterContinuesCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "promreg_test_total", Help: "test"}
	first := Register(reg, prometheus.NewCounter(opts), nil)
	first.Inc()
	second := Register(reg, prometheus.NewCounter(opts), nil)
	second.Inc()
	if got := testutil.ToFloat64(first); got != 2 {
		t.Fatalf("count %v, want 2: the second registration did not reuse the first", got)
	}
	// A clash of another kind is not fatal: the collector works unregistered.
	clash := Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "promreg_test_total", Help: "other"}), nil)
	clash.Set(5)
	if got := testutil.ToFloat64(first); got != 2 {
		t.Fatalf("the clashing gauge changed the counter: %v", got)
	}
	if c := Register(nil, prometheus.NewCounter(opts), nil); c == nil {
		t.Fatal("nil registry returned nil")
	}
}
