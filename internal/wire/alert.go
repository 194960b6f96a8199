package wire

import (
	"encoding/json"
	"fmt"
	"time"
)

// AlertState is the state an alert notification reports.
type AlertState string

// Alert states carried on the wire. Pending alerts are not published.
const (
	StateFiring   AlertState = "firing"
	StateResolved AlertState = "resolved"
)

// Alert is one state change of one alert: the analyzer publishes it to
// JetStream on AlertSubject(cluster, rule) when an alert starts firing or
// resolves. It is JSON so that the nats CLI can read it.
type Alert struct {
	V           int               `json:"v"`
	Fingerprint string            `json:"fingerprint"` // stable per rule and label set
	Rule        string            `json:"rule"`
	Group       string            `json:"group"`
	State       AlertState        `json:"state"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Signal      string            `json:"signal"`
	Stat        string            `json:"stat"`
	Value       float64           `json:"value"`     // the statistic when this change happened
	Threshold   float64           `json:"threshold"` // what the detector compared it with
	Baseline    float64           `json:"baseline,omitempty"`
	Score       float64           `json:"score,omitempty"`  // normalised anomaly score in [0,1]
	StartsAt    time.Time         `json:"starts_at"`        // when it started firing
	EndsAt      time.Time         `json:"ends_at,omitzero"` // when it resolved
	At          time.Time         `json:"at"`               // when this change was decided
}

// MsgID is the JetStream deduplication id of this state change: the same
// change published twice (by a retry or a restarted analyzer) is stored once.
func (a *Alert) MsgID() string {
	return fmt.Sprintf("%s-%s-%d", a.Fingerprint, a.State, a.StartsAt.UnixNano())
}

// EncodeAlert returns the JSON encoding of a with the schema version set.
func EncodeAlert(a *Alert) ([]byte, error) {
	c := *a
	c.V = Version
	return json.Marshal(&c)
}

// DecodeAlert decodes and checks an alert.
func DecodeAlert(data []byte) (*Alert, error) {
	var a Alert
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	if a.V != Version {
		return nil, fmt.Errorf("alert: schema version %d, this build reads %d", a.V, Version)
	}
	if a.Rule == "" || a.Fingerprint == "" {
		return nil, fmt.Errorf("alert: rule and fingerprint are required")
	}
	if a.State != StateFiring && a.State != StateResolved {
		return nil, fmt.Errorf("alert: unknown state %q", a.State)
	}
	return &a, nil
}
