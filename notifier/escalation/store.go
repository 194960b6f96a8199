package escalation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/bus"
)

// Store keeps escalations across restarts.
type Store interface {
	// Load returns every stored escalation.
	Load(ctx context.Context) ([]*State, error)
	// Put stores st, replacing the escalation with the same fingerprint.
	Put(ctx context.Context, st *State) error
}

// Bucket is the JetStream key-value bucket of escalations.
const Bucket = "MCIV_ESCALATIONS"

// BucketTTL is how long an escalation is kept after its last change.
const BucketTTL = 7 * 24 * time.Hour

// KVStore keeps escalations in the JetStream key-value bucket Bucket, one
// key per alert fingerprint, as JSON.
type KVStore struct {
	kv jetstream.KeyValue
}

// NewKVStore creates or binds the bucket.
func NewKVStore(ctx context.Context, js jetstream.JetStream, replicas int) (*KVStore, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "mciv phone escalations in progress",
		History:     1,
		TTL:         BucketTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		// Escalations in progress, expiring after BucketTTL: 8 MiB.
		MaxBytes: 8 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("escalation: key-value bucket %s: %w", Bucket, err)
	}
	return &KVStore{kv: kv}, nil
}

// Load returns every escalation in the bucket; undecodable entries are
// skipped with an error joined to the result.
func (s *KVStore) Load(ctx context.Context) ([]*State, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("escalation: listing %s: %w", Bucket, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	_ = lister.Stop()
	var out []*State
	var errs []error
	for _, k := range keys {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("escalation: reading %s: %w", k, err)
		}
		var st State
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			errs = append(errs, fmt.Errorf("escalation: decoding %s: %w", k, err))
			continue
		}
		out = append(out, &st)
	}
	return out, errors.Join(errs...)
}

// Put stores st under its fingerprint's key.
func (s *KVStore) Put(ctx context.Context, st *State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("escalation: encoding: %w", err)
	}
	if _, err := s.kv.Put(ctx, Key(st.Fingerprint), data); err != nil {
		return fmt.Errorf("escalation: storing %s: %w", st.Fingerprint, err)
	}
	return nil
}

var kvKey = regexp.MustCompile(`^[-_=a-zA-Z0-9]{1,128}$`)

// Key is the bucket key of a fingerprint: the fingerprint itself when it
// is a valid key, else a hash of it.
func Key(fingerprint string) string {
	if kvKey.MatchString(fingerprint) {
		return fingerprint
	}
	sum := sha256.Sum256([]byte(fingerprint))
	return "h-" + hex.EncodeToString(sum[:16])
}

// MemoryStore is a Store in memory, for tests and for running without
// JetStream (escalations then restart from scratch).
type MemoryStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string][]byte{}} }

// Load returns copies of the stored escalations, ordered by key.
func (s *MemoryStore) Load(context.Context) ([]*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*State, 0, len(keys))
	for _, k := range keys {
		var st State
		if err := json.Unmarshal(s.m[k], &st); err != nil {
			return nil, err
		}
		out = append(out, &st)
	}
	return out, nil
}

// Put stores a copy of st.
func (s *MemoryStore) Put(_ context.Context, st *State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[Key(st.Fingerprint)] = data
	return nil
}
