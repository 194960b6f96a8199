package actuator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/bus"
)

// Keys in the state bucket.
const (
	keyPause          = "pause"
	keyCooldownPrefix = "cooldown."
	keyLeasePrefix    = "lease."
)

// ErrLeaseHeld is returned by Acquire when another actuator holds the lease.
var ErrLeaseHeld = errors.New("actuator lease is held by another actuator")

// ErrLeaseLost is returned by Verify when the lease is no longer ours.
var ErrLeaseLost = errors.New("actuator lease lost")

// Store keeps the actuator's durable state in JetStream KV: the global
// pause and the per-cluster cooldowns in one bucket, the per-cluster
// leases in another whose MaxAge is the lease TTL (a lease of a crashed
// actuator expires by itself).
type Store struct {
	state jetstream.KeyValue
	lease jetstream.KeyValue
}

// OpenStore creates or opens the buckets <prefix>_state and <prefix>_lease.
// Both have replicas replicas (0: 1).
func OpenStore(ctx context.Context, js jetstream.JetStream, prefix string, leaseTTL time.Duration, replicas int) (*Store, error) {
	s, err := openState(ctx, js, prefix, replicas)
	if err != nil {
		return nil, err
	}
	lease, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket: prefix + "_lease", Description: "mciv failover actuator lease",
		History: 1, Storage: jetstream.FileStorage, TTL: leaseTTL, Replicas: replicas,
		MaxBytes: 1 << 20, // one key, the lease
	})
	if err != nil {
		return nil, fmt.Errorf("failover lease bucket: %w", err)
	}
	s.lease = lease
	return s, nil
}

// OpenState opens only the state bucket (pause and cooldowns), for tools
// such as `mciv failover pause` that must not touch the lease bucket's
// settings. Lease methods of the result must not be used.
// A state bucket that exists is used as it is (its replicas are the
// actuator's business); one that does not is created with one replica.
func OpenState(ctx context.Context, js jetstream.JetStream, prefix string) (*Store, error) {
	if kv, err := js.KeyValue(ctx, prefix+"_state"); err == nil {
		return &Store{state: kv}, nil
	}
	return openState(ctx, js, prefix, 1)
}

func openState(ctx context.Context, js jetstream.JetStream, prefix string, replicas int) (*Store, error) {
	state, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket: prefix + "_state", Description: "mciv failover pause and cooldowns",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
		MaxBytes: 4 << 20, // the pause and one cooldown per cluster
	})
	if err != nil {
		return nil, fmt.Errorf("failover state bucket: %w", err)
	}
	return &Store{state: state}, nil
}

// PauseInfo is the value of the pause key.
type PauseInfo struct {
	Paused bool      `json:"paused"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Paused reads the global pause. A read error counts as paused: when in
// doubt, do nothing.
func (s *Store) Paused(ctx context.Context) (PauseInfo, error) {
	e, err := s.state.Get(ctx, keyPause)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return PauseInfo{}, nil
	}
	if err != nil {
		return PauseInfo{Paused: true}, fmt.Errorf("read failover pause: %w", err)
	}
	var p PauseInfo
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return PauseInfo{Paused: true}, fmt.Errorf("decode failover pause: %w", err)
	}
	return p, nil
}

// SetPaused sets or clears the global pause.
func (s *Store) SetPaused(ctx context.Context, p PauseInfo) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode failover pause: %w", err)
	}
	if _, err := s.state.Put(ctx, keyPause, b); err != nil {
		return fmt.Errorf("write failover pause: %w", err)
	}
	return nil
}

// CooldownInfo is the value of a cluster's cooldown key.
type CooldownInfo struct {
	Until        time.Time `json:"until"`
	ActionID     string    `json:"action_id"`
	FencingToken uint64    `json:"fencing_token"`
}

// Cooldown returns the cluster's cooldown and its revision (0 when none).
func (s *Store) Cooldown(ctx context.Context, cluster string) (CooldownInfo, uint64, error) {
	e, err := s.state.Get(ctx, keyCooldownPrefix+cluster)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return CooldownInfo{}, 0, nil
	}
	if err != nil {
		return CooldownInfo{}, 0, fmt.Errorf("read cooldown of %s: %w", cluster, err)
	}
	var c CooldownInfo
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return CooldownInfo{}, 0, fmt.Errorf("decode cooldown of %s: %w", cluster, err)
	}
	return c, e.Revision(), nil
}

// StartCooldown writes the cluster's cooldown only if the key is still at
// revision prev (0: absent), so that two actuators cannot both start one.
func (s *Store) StartCooldown(ctx context.Context, cluster string, c CooldownInfo, prev uint64) (uint64, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("encode cooldown: %w", err)
	}
	key := keyCooldownPrefix + cluster
	var rev uint64
	if prev == 0 {
		rev, err = s.state.Create(ctx, key, b)
	} else {
		rev, err = s.state.Update(ctx, key, b, prev)
	}
	if err != nil {
		return 0, fmt.Errorf("start cooldown of %s: %w", cluster, err)
	}
	return rev, nil
}

// ClearCooldown removes the cooldown written at revision rev (an action
// that was not attempted does not cool the cluster down).
func (s *Store) ClearCooldown(ctx context.Context, cluster string, rev uint64) error {
	if err := s.state.Delete(ctx, keyCooldownPrefix+cluster, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("clear cooldown of %s: %w", cluster, err)
	}
	return nil
}

// LeaseInfo is the value of a lease key.
type LeaseInfo struct {
	Holder string    `json:"holder"`
	At     time.Time `json:"at"`
}

// Acquire takes the cluster's lease for holder and returns its revision,
// the fencing token. It fails with ErrLeaseHeld when another holds it.
func (s *Store) Acquire(ctx context.Context, cluster string, l LeaseInfo) (uint64, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return 0, fmt.Errorf("encode lease: %w", err)
	}
	rev, err := s.lease.Create(ctx, keyLeasePrefix+cluster, b)
	if bus.IsConflict(err) {
		holder := "unknown"
		if e, gerr := s.lease.Get(ctx, keyLeasePrefix+cluster); gerr == nil {
			var other LeaseInfo
			if json.Unmarshal(e.Value(), &other) == nil {
				holder = other.Holder
			}
		}
		return 0, fmt.Errorf("%w (%s)", ErrLeaseHeld, holder)
	}
	if err != nil {
		return 0, fmt.Errorf("acquire lease of %s: %w", cluster, err)
	}
	return rev, nil
}

// Verify checks with the server that the lease is still at revision rev.
func (s *Store) Verify(ctx context.Context, cluster string, rev uint64) error {
	e, err := s.lease.Get(ctx, keyLeasePrefix+cluster)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	if e.Revision() != rev {
		return fmt.Errorf("%w: revision %d, ours %d", ErrLeaseLost, e.Revision(), rev)
	}
	return nil
}

// Renew rewrites the lease only if it is still at revision rev (compare
// and set on the server) and returns the new revision: the fencing token
// to act under. Any error means the lease is not ours any more.
func (s *Store) Renew(ctx context.Context, cluster string, rev uint64, l LeaseInfo) (uint64, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return 0, fmt.Errorf("encode lease: %w", err)
	}
	nrev, err := s.lease.Update(ctx, keyLeasePrefix+cluster, b, rev)
	if err != nil {
		return 0, fmt.Errorf("%w: renew at revision %d: %w", ErrLeaseLost, rev, err)
	}
	return nrev, nil
}

// Release deletes the lease if it is still at revision rev.
func (s *Store) Release(ctx context.Context, cluster string, rev uint64) error {
	if err := s.lease.Delete(ctx, keyLeasePrefix+cluster, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("release lease of %s: %w", cluster, err)
	}
	return nil
}
