package wire

import (
	"encoding/json"
	"fmt"
	"time"
)

// ActionSubject is where decisions about cluster's failovers are audited.
func ActionSubject(cluster string) string { return ActionsPrefix + "." + cluster }

// ActionKindResolve is the Kind of the Action by which the analyzer
// audits an alert a person resolved (the Resolve button, /mciv resolve,
// key 2 on the phone): not a failover.
const ActionKindResolve = "resolve"

// ResolveActionSubject is where the analyzer audits the resolves of
// cluster's alerts: ActionSubject(cluster) + ".resolve", so that NATS
// permissions can let the analyzer publish resolves and nothing else.
func ResolveActionSubject(cluster string) string {
	return ActionSubject(cluster) + "." + ActionKindResolve
}

// ActionKindAck is the Kind of the Action by which a part audits an
// acknowledgement it refused (unsigned, forged, for another cluster).
const ActionKindAck = "ack"

// AckActionSubject is where the notifier audits the acknowledgements of
// cluster it refused: ActionSubject(cluster) + ".ack".
func AckActionSubject(cluster string) string { return ActionSubject(cluster) + "." + ActionKindAck }

// Action is one failover decision, acted on or refused, with the evidence
// and the safeguard that decided it. Every decision is published to
// JetStream on ActionSubject; it is JSON so that the nats CLI can read it.
type Action struct {
	V            int               `json:"v"`
	ID           string            `json:"id"` // dedup id of this decision
	Cluster      string            `json:"cluster"`
	Fingerprint  string            `json:"fingerprint,omitempty"` // the alert that asked
	Rule         string            `json:"rule,omitempty"`
	Kind         string            `json:"kind"`     // "switchover", "failover", "steer", "resolve"
	Decision     string            `json:"decision"` // "acted", "refused", "dry_run", "pending_approval"
	Outcome      string            `json:"outcome,omitempty"`
	Safeguard    string            `json:"safeguard,omitempty"` // the guard that refused, if any
	From         string            `json:"from,omitempty"`
	To           string            `json:"to,omitempty"`
	FencingToken uint64            `json:"fencing_token,omitempty"`
	Reason       string            `json:"reason"` // one sentence for humans
	Evidence     map[string]string `json:"evidence,omitempty"`
	At           time.Time         `json:"at"`
	Duration     time.Duration     `json:"duration,omitempty"`
	// Nonce, on a pending_approval, is the single-use secret the Approve
	// button carries back in the Ack.
	Nonce string `json:"nonce,omitempty"`
}

// EncodeAction returns the JSON encoding of a with the schema version set.
func EncodeAction(a *Action) ([]byte, error) {
	c := *a
	c.V = Version
	return json.Marshal(&c)
}

// DecodeAction decodes and checks an action record.
func DecodeAction(data []byte) (*Action, error) {
	var a Action
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("action: %w", err)
	}
	if a.V != Version {
		return nil, fmt.Errorf("action: schema version %d, this build reads %d", a.V, Version)
	}
	if a.ID == "" || a.Cluster == "" || a.Decision == "" {
		return nil, fmt.Errorf("action: id, cluster and decision are required")
	}
	return &a, nil
}
