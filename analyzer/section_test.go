package analyzer

import (
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestFleetSectionApply(t *testing.T) {
	var s Section
	if err := yaml.Unmarshal([]byte(`{partitioned: true, fleet: {pin_timeout: 1s, checkpoint_interval: 500ms, absence_grace: 4s, warmup: 1m, snapshot_interval: 45s, rebalance: false}}`), &s); err != nil {
		t.Fatal(err)
	}
	c := s.Fleet.Apply(FleetConfig{Partitions: 4, PinnedTTL: time.Hour})
	want := FleetConfig{Partitions: 4, PinnedTTL: time.Second, CheckpointInterval: 500 * time.Millisecond, AbsenceGrace: 4 * time.Second, Warmup: time.Minute, NoRebalance: true}
	if c.PinnedTTL != want.PinnedTTL || c.CheckpointInterval != want.CheckpointInterval || c.AbsenceGrace != want.AbsenceGrace || c.Warmup != want.Warmup || c.SnapshotInterval != 45*time.Second || !c.NoRebalance {
		t.Fatalf("got %+v", c)
	}
	if c := (FleetSection{}).Apply(FleetConfig{PinnedTTL: time.Hour}); c.PinnedTTL != time.Hour || c.NoRebalance {
		t.Fatalf("empty section changed the config: %+v", c)
	}
}
