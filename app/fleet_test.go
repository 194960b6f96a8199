package app

import (
	"testing"

	"github.com/mciv/mciv/app/config"
)

func TestFleetConfig(t *testing.T) {
	var cfg config.Config
	if fc := fleetConfig(cfg, nil); fc.Partitions != 0 {
		t.Fatalf("fleet mode without analyzer.partitioned: %+v", fc)
	}
	cfg.Analyzer.Partitioned = true
	cfg.Host = "an-1"
	cfg.NATS.Partitions = 8
	fc := fleetConfig(cfg, nil)
	if fc.Partitions != 8 || fc.Replicas != 1 || fc.Member != "an-1" || fc.Input.Replicas != 1 {
		t.Fatalf("%+v", fc)
	}
}
