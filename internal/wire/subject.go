// Package wire owns the schema of every message mciv sends over NATS:
// the subjects, the compact binary encoding of sample batches, and the JSON
// encoding of events and alerts. Every message carries a schema version.
package wire

import (
	"fmt"
	"strings"
)

// Version is the schema version written into every message.
const Version = 1

// Subject prefixes and wildcards.
const (
	SamplesPrefix = "mciv.samples"
	EventsPrefix  = "mciv.events"
	AlertsPrefix  = "mciv.alerts"
	ActionsPrefix = "mciv.actions"

	SamplesWildcard = SamplesPrefix + ".>"
	EventsWildcard  = EventsPrefix + ".>"
	AlertsWildcard  = AlertsPrefix + ".>"
	ActionsWildcard = ActionsPrefix + ".>"
)

// ValidToken reports whether s may be used as one NATS subject token
// (a cluster or host name): non-empty, printable, no dots, wildcards or spaces.
func ValidToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty name")
	}
	if len(s) > 128 {
		return fmt.Errorf("name %.20q... longer than 128 bytes", s)
	}
	for _, r := range s {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == 0x7f {
			return fmt.Errorf("name %q contains %q, which a NATS subject token cannot hold", s, r)
		}
	}
	return nil
}

// SamplesSubject is where host publishes its sample batches.
func SamplesSubject(cluster, host string) string {
	return SamplesPrefix + "." + cluster + "." + host
}

// EventsSubject is where host publishes its notable events.
func EventsSubject(cluster, host string) string {
	return EventsPrefix + "." + cluster + "." + host
}

// AlertSubject is where the analyzer publishes state changes of alerts of
// rule in cluster.
func AlertSubject(cluster, rule string) string {
	return AlertsPrefix + "." + cluster + "." + rule
}

// ParseHostSubject splits a samples or events subject into its prefix
// ("mciv.samples" or "mciv.events"), cluster and host.
func ParseHostSubject(subject string) (prefix, cluster, host string, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "mciv" {
		return "", "", "", fmt.Errorf("subject %q: want mciv.<kind>.<cluster>.<host>", subject)
	}
	prefix = parts[0] + "." + parts[1]
	if prefix != SamplesPrefix && prefix != EventsPrefix {
		return "", "", "", fmt.Errorf("subject %q: not a samples or events subject", subject)
	}
	return prefix, parts[2], parts[3], nil
}
