package bus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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
	// MaxBytes bounds each stream's files, by stream name; a stream not
	// named takes DefaultStreamMaxBytes. Together they stay well below
	// the server's store (nats.max_store, DefaultMaxStore), so that one
	// stream filled by a flood cannot take the space of the others or of
	// the KV buckets.
	MaxBytes map[string]int64
}

// DefaultStreamMaxBytes are the byte limits of the streams. Every stream
// discards its OLDEST messages when full (jetstream.DiscardOld), never
// refuses a new one:
//   - MCIV_ALERTS: an alert change is needed until every notifier lane
//     has delivered it (seconds to minutes); what is older is history. A
//     full stream refusing new changes would silence every alert, the
//     worst outcome, so the oldest go. 64 MiB is about 100,000 changes.
//   - MCIV_ACTIONS: the failover audit trail; the newest records (what
//     the actuator just decided, and why) matter most, so the oldest go
//     first, and refusing a decision's record would block the decision.
//   - MCIV_ACKS: acknowledgements and approvals are acted on within
//     minutes; old ones are disposable.
var DefaultStreamMaxBytes = map[string]int64{
	AlertsStream:  64 << 20,
	ActionsStream: 64 << 20,
	AcksStream:    16 << 20,
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
		cfg.MaxBytes = DefaultStreamMaxBytes[cfg.Name]
		if b, ok := opts.MaxBytes[cfg.Name]; ok && b != 0 {
			cfg.MaxBytes = b
		}
		cfg.Discard = jetstream.DiscardOld // see DefaultStreamMaxBytes
		if _, err := EnsureStream(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}

// EnsureStream creates the stream cfg describes, or updates it only when
// what cfg sets differs from the stream's configuration, and returns it.
// Every mciv part calls it at start on the same streams, so an update is
// not sent needlessly: an update of a file stream races in nats-server
// with a consumer created on it at the same moment (the store's config is
// replaced while the consumer's store reads it; seen with -race in
// 2.15.2), and it rewrites the stream's metadata on every start.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, cfg)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			if err != nil {
				return nil, fmt.Errorf("jetstream stream %s: %w", cfg.Name, err)
			}
			return s, nil
		}
		// Created by another part meanwhile: compare with it.
		s, err = js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream stream %s: %w", cfg.Name, err)
	}
	if !streamDiffers(s.CachedInfo().Config, cfg) {
		return s, nil
	}
	s, err = js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("jetstream stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// streamDiffers reports whether the stream's configuration cur differs
// from want in a field want sets (a zero field in want is the server's
// default and is compared as the server reports it).
func streamDiffers(cur, want jetstream.StreamConfig) bool {
	if want.Replicas == 0 {
		want.Replicas = 1
	}
	if want.MaxBytes == 0 {
		want.MaxBytes = -1
	}
	if want.MaxMsgs == 0 {
		want.MaxMsgs = -1
	}
	if want.MaxMsgsPerSubject == 0 {
		want.MaxMsgsPerSubject = -1
	}
	if want.MaxMsgSize == 0 {
		want.MaxMsgSize = -1
	}
	if want.MaxConsumers == 0 {
		want.MaxConsumers = -1
	}
	if want.Duplicates == 0 {
		want.Duplicates = cur.Duplicates
	}
	// What the server fills in and mciv never sets.
	want.Metadata, want.Placement, want.Compression = cur.Metadata, cur.Placement, cur.Compression
	want.Retention, want.ConsumerLimits, want.FirstSeq = cur.Retention, cur.ConsumerLimits, cur.FirstSeq
	want.AllowDirect, want.MirrorDirect, want.AllowRollup = cur.AllowDirect, cur.MirrorDirect, cur.AllowRollup
	return !reflect.DeepEqual(cur, want)
}
