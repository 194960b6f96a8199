package fleetlab

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	s, err := ParseMetrics(strings.NewReader(`# HELP x y
# TYPE mciv_analyzer_batches_missed_total counter
mciv_analyzer_batches_missed_total{cluster="c",host="h5"} 2
mciv_analyzer_batches_missed_total{cluster="c",host="h6"} 1
mciv_analyzer_partitions_owned 3
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sum("mciv_analyzer_batches_missed_total"); got != 3 {
		t.Errorf("sum = %v", got)
	}
	if got := s.Sum("mciv_analyzer_batches_missed_total", "host", "h5"); got != 2 {
		t.Errorf("h5 = %v", got)
	}
	if got := s.Sum("mciv_analyzer_partitions_owned"); got != 3 {
		t.Errorf("owned = %v", got)
	}
}
