package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	AlertsStream  = "MCIV_ALERTS"
	ActionsStream = "MCIV_ACTIONS"
	AcksStream    = "MCIV_ACKS"
)

// DedupWindow is how long JetStream remembers message ids: a state change
// republished within it is stored once.
const DedupWindow = 10 * time.Minute

// StreamOptions tunes the streams for the deployment.
type StreamOptions struct {
	// Replicas is the JetStream replication factor (1 for the embedded server).
	Replicas int
	// MaxAge bounds how long alerts and actions are kept.
	MaxAge time.Duration
}

// EnsureStreams creates or updates the alerts, actions and acks streams.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = 30 * 24 * time.Hour
	}
	for _, cfg := range []jetstream.StreamConfig{
		{Name: AlertsStream, Subjects: []string{wire.AlertsWildcard}, Description: "mciv alert state changes"},
		{Name: ActionsStream, Subjects: []string{wire.ActionsWildcard}, Description: "mciv failover decisions and audit trail"},
		{Name: AcksStream, Subjects: []string{wire.AcksWildcard}, Description: "mciv acknowledgements from Slack and phone"},
	} {
		cfg.Storage = jetstream.FileStorage
		cfg.Replicas = opts.Replicas
		cfg.MaxAge = opts.MaxAge
		cfg.Duplicates = DedupWindow
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("jetstream stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}
