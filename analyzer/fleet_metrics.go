package analyzer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// fleetMetrics are the metrics of loss counting, the absence grace and
// partition ownership.
type fleetMetrics struct {
	missed      *prometheus.CounterVec // by cluster, host
	graces      prometheus.Counter
	owned       prometheus.Gauge
	takeovers   prometheus.Counter
	lost        prometheus.Counter
	checkpoints prometheus.Counter
	replayed    prometheus.Counter
	handovers   prometheus.Counter
	restores    *prometheus.CounterVec // by from (RestoredFromSnapshot, ...)
	snapshots   *prometheus.CounterVec // by result (stored, failed)
	stateLoads  *prometheus.CounterVec // by result (StateLoaded, ...)
}

func newFleetMetrics(reg prometheus.Registerer) (*fleetMetrics, error) {
	m := &fleetMetrics{
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_analyzer_batches_missed_total",
			Help: "Sample batches that never arrived: gaps in each host's batch sequence numbers.",
		}, []string{"cluster", "host"}),
		graces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_absence_graces_total",
			Help: "Times absence rules were held for the grace period after a reconnect or a partition takeover.",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mciv_analyzer_partitions_owned", Help: "Input partitions this analyzer evaluates.",
		}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_partition_takeovers_total", Help: "Partitions this analyzer took over.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_partition_losses_total", Help: "Partitions this analyzer lost (fenced by a failed checkpoint or unpinned).",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_checkpoints_total", Help: "Partition checkpoints written.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_replayed_messages_total", Help: "Input messages replayed on takeover (warm-up and catch-up).",
		}),
		handovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mciv_analyzer_partition_handovers_total", Help: "Partitions this analyzer handed to their preferred member (rebalancing).",
		}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_analyzer_partition_restores_total",
			Help: "Partition takeovers by where the detector baselines came from: snapshot (the partition's detector snapshot), warmup (a replay of the warm-up), none.",
		}, []string{"from"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_analyzer_detector_snapshots_total",
			Help: "Detector snapshots of owned partitions written to the object store, by result (stored, failed).",
		}, []string{"result"}),
		stateLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mciv_analyzer_detector_state_loads_total",
			Help: "Loads of the detector state file at start (single process), by result: loaded, missing, corrupt, stale.",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.missed, m.graces, m.owned, m.takeovers, m.lost, m.checkpoints, m.replayed, m.handovers, m.restores, m.snapshots, m.stateLoads} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering analyzer fleet metrics: %w", err)
			}
		}
	}
	return m, nil
}
