// Package layout states mciv's floor plan, the layers of DESIGN.md from
// top to bottom, and its test keeps every import pointing down them:
//
//	cmd/mciv                                  the one binary's commands
//	app (app/config, app/demo)                the composition root
//	collector, analyzer, failover, notifier,  the parts; they meet only on the bus
//	steer
//	rules                                     the rules-file format and defaults
//	detect, bpf                               pure detectors; eBPF objects and bindings
//	internal (wire, bus, histo, yamltime)     what every part shares
//
// internal/lab/... holds the test labs: only tests import them, and the
// demo (app/demo), which is a lab that ships.
package layout

// Layers maps each top-level folder of the module to its rank: a package
// may import only packages of a lower rank, or of its own folder.
func Layers() map[string]int {
	return map[string]int{
		"cmd":       5,
		"app":       4,
		"collector": 3, "analyzer": 3, "failover": 3, "notifier": 3, "steer": 3,
		"rules":  2,
		"detect": 1, "bpf": 1,
		"internal": 0,
	}
}
