package wire

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event is a rare, notable occurrence on a host (one TCP retransmit with its
// 4-tuple, a reset, a slow query). Events are JSON so that the nats CLI can
// read them.
type Event struct {
	V       int               `json:"v"`
	Cluster string            `json:"cluster"`
	Host    string            `json:"host"`
	Time    time.Time         `json:"time"`
	Kind    string            `json:"kind"` // e.g. "tcp_retransmit"
	Labels  map[string]string `json:"labels,omitempty"`
	Value   float64           `json:"value,omitempty"`
	Text    string            `json:"text,omitempty"`
}

// EncodeEvent returns the JSON encoding of e with the schema version set.
func EncodeEvent(e *Event) ([]byte, error) {
	c := *e
	c.V = Version
	return json.Marshal(&c)
}

// DecodeEvent decodes and checks an event.
func DecodeEvent(data []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	if e.V != Version {
		return nil, fmt.Errorf("event: schema version %d, this build reads %d", e.V, Version)
	}
	if e.Kind == "" {
		return nil, fmt.Errorf("event: no kind")
	}
	return &e, nil
}
