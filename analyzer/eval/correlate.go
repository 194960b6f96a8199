package eval

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mciv/mciv/analyzer/lifecycle"
	"github.com/mciv/mciv/rules"
)

// AnnotationCorrelated is the annotation a firing alert gains when other
// signals of its host are anomalous (their alerts pending or firing) at
// the same time, e.g. "together with tcp retransmits to 10.1.2.3:5432:
// network suspected".
const AnnotationCorrelated = "correlated"

// AnnotationKind is the annotation of a firing alert that names the kind
// of anomaly its detector saw ("spike", "level shift", "drift",
// "variance change", "broken seasonality"), for detectors that tell it.
const AnnotationKind = "kind"

// maxCorrelated bounds how many other anomalies an annotation names.
const maxCorrelated = 3

// Signal families for the verdict of a correlation.
const (
	familyQuery   = "query"
	familyNetwork = "network"
	familyStorage = "storage"
)

// signalInfo describes a signal in correlation annotations: what it is,
// the label that says where, and the preposition before that label.
type signalInfo struct {
	what, label, prep, family string
}

func infoOf(signal string) signalInfo {
	switch signal {
	case "db_query_seconds":
		return signalInfo{"query latency", "instance", "on", familyQuery}
	case "tcp_retransmits_total":
		return signalInfo{"tcp retransmits", "peer", "to", familyNetwork}
	case "tcp_resets_total":
		return signalInfo{"tcp resets", "peer", "with", familyNetwork}
	case "tcp_rtt_seconds":
		return signalInfo{"tcp round-trip time", "peer", "to", familyNetwork}
	case "tcp_connect_seconds":
		return signalInfo{"tcp connect latency", "peer", "to", familyNetwork}
	case "tcp_connect_errors_total":
		return signalInfo{"tcp connect errors", "peer", "to", familyNetwork}
	case "disk_io_seconds":
		return signalInfo{"disk latency", "device", "on", familyStorage}
	}
	return signalInfo{what: strings.ReplaceAll(signal, "_", " ")}
}

// correlation describes the other anomalies of g's host: the pending and
// firing alerts of the other rules, then a verdict when query latency is
// anomalous together with network signals (network suspected) or disk
// latency (storage suspected). It returns "" when g is alone.
func correlation(all []*rules.Rule, h *host, ruleIdx int, g *group) string {
	var (
		descs    []string
		families = map[string]bool{infoOf(all[ruleIdx].Signal).family: true}
	)
	for j, r := range all {
		if j == ruleIdx || r.Signal == all[ruleIdx].Signal {
			continue // another rule on the same signal is no corroboration
		}
		info := infoOf(r.Signal)
		for _, o := range h.groups[j].all() {
			if o.life.State == lifecycle.Inactive {
				continue
			}
			d := info.what
			v := o.labels[info.label]
			if v == "" {
				v = o.top // the largest contributor, when the rule does not group by it
			}
			if info.label != "" && v != "" {
				d += " " + info.prep + " " + v
			}
			if !slices.Contains(descs, d) {
				descs = append(descs, d)
			}
			families[info.family] = true
		}
	}
	if len(descs) == 0 {
		return ""
	}
	slices.Sort(descs)
	if len(descs) > maxCorrelated {
		descs = append(descs[:maxCorrelated], fmt.Sprintf("%d more", len(descs)-maxCorrelated))
	}
	out := "together with " + strings.Join(descs, ", ")
	if families[familyQuery] {
		var suspects []string
		for _, f := range []string{familyNetwork, familyStorage} {
			if families[f] {
				suspects = append(suspects, f)
			}
		}
		if len(suspects) > 0 {
			out += ": " + strings.Join(suspects, " and ") + " suspected"
		}
	}
	return out
}
