package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureKeyValue creates the bucket cfg describes, or updates it when its
// replicas, history, TTL, size or description differ, and returns it
// with reads that see every write acknowledged before them.
//
// A bucket's stream is created with direct gets on, and on a replicated
// stream any replica answers a direct get, a follower that has not yet
// applied the latest write included: a read right after a write can
// return the value before it (nats-server issues 4710 and 6557). mciv
// reads buckets to decide (what Slack was last sent, who owns a
// partition, who holds the failover lease), so EnsureKeyValue turns
// direct gets off: every read goes to the stream leader, which answers
// only after it stored what it acknowledged.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	name := "KV_" + cfg.Bucket
	s, err := js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := js.CreateKeyValue(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
	case err != nil:
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	case kvDiffers(s.CachedInfo().Config, cfg):
		// Only when something changed: an update turns direct gets on
		// again for a moment.
		if _, err := js.UpdateKeyValue(ctx, cfg); err != nil {
			return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
	}
	for {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
		}
		sc := s.CachedInfo().Config
		if !sc.AllowDirect {
			break
		}
		sc.AllowDirect = false
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("bucket %s: turning direct gets off: %w", cfg.Bucket, err)
		}
	}
	// Bound now, the bucket reads as its stream is configured now:
	// through the leader.
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// kvDiffers reports whether the bucket's stream sc differs from cfg in
// what mciv configures.
func kvDiffers(sc jetstream.StreamConfig, cfg jetstream.KeyValueConfig) bool {
	replicas := max(cfg.Replicas, 1)
	history := int64(max(cfg.History, 1))
	maxBytes := cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	return sc.Replicas != replicas || sc.MaxMsgsPerSubject != history || sc.MaxAge != cfg.TTL ||
		sc.MaxBytes != maxBytes || sc.Description != cfg.Description || sc.Storage != cfg.Storage
}

// IsConflict reports whether err is a failed compare-and-set of a bucket
// (Create of a key that exists, Update of a revision that is not the
// latest). A replicated bucket reports the conflict of an Update as API
// error 10164, which jetstream.ErrKeyExists does not match.
func IsConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
