package wire

import (
	"encoding/json"
	"fmt"
	"time"
)

// AcksPrefix starts the subjects of acknowledgements.
const (
	AcksPrefix   = "mciv.acks"
	AcksWildcard = AcksPrefix + ".>"
)

// AckAction is what a human asked for.
type AckAction string

// Acknowledgement actions.
const (
	AckAcknowledge AckAction = "acknowledge" // stop escalating; I am on it
	AckResolve     AckAction = "resolve"     // the human declares it over
	AckSilence     AckAction = "silence"     // mute it until Until
	AckApprove     AckAction = "approve"     // approve a pending failover
)

// Where an acknowledgement was made (Ack.Via).
const (
	ViaSlack = "slack" // a button or /mciv command in Slack, by the notifier
	ViaPhone = "phone" // a key pressed on an escalation call, by the notifier
	ViaCLI   = "cli"   // `mciv ack` with an operator's credentials
)

// Ack is a human's answer to an alert, from a Slack button or a phone key.
// It rides JetStream on AckSubject so that every notifier replica and the
// escalation engine see it, and none is lost.
type Ack struct {
	V           int       `json:"v"`
	Fingerprint string    `json:"fingerprint"`
	Cluster     string    `json:"cluster"`
	Action      AckAction `json:"action"`
	By          string    `json:"by"`  // who: a Slack user id, a phone number's owner
	Via         string    `json:"via"` // "slack", "phone", "cli"
	Until       time.Time `json:"until,omitzero"`
	At          time.Time `json:"at"`
	ID          string    `json:"id"` // unique per human action: the dedup id
	// Nonce, on an approval, is the pending approval's nonce, carried by
	// the button that was pressed.
	Nonce string `json:"nonce,omitempty"`
}

// AckSubject is where acknowledgements of cluster's alerts go.
func AckSubject(cluster string) string { return AcksPrefix + "." + cluster }

// EncodeAck returns the JSON encoding of a with the schema version set.
func EncodeAck(a *Ack) ([]byte, error) {
	c := *a
	c.V = Version
	return json.Marshal(&c)
}

// DecodeAck decodes and checks an acknowledgement.
func DecodeAck(data []byte) (*Ack, error) {
	var a Ack
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("ack: %w", err)
	}
	if a.V != Version {
		return nil, fmt.Errorf("ack: schema version %d, this build reads %d", a.V, Version)
	}
	switch a.Action {
	case AckAcknowledge, AckResolve, AckSilence, AckApprove:
	default:
		return nil, fmt.Errorf("ack: unknown action %q", a.Action)
	}
	if a.Fingerprint == "" || a.ID == "" {
		return nil, fmt.Errorf("ack: fingerprint and id are required")
	}
	return &a, nil
}
