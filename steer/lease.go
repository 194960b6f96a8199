package steer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseKey is the key of the controller lease in its bucket.
const leaseKey = "controller"

// lease makes one controller per deployment the writer of routes: a key in
// a KV bucket whose entries expire after the TTL, created by whoever finds
// it absent and renewed by compare-and-set on its revision. The holder
// stops writing routes a quarter TTL before the key can expire, so two
// controllers never write at once.
type lease struct {
	kv    jetstream.KeyValue
	id    string
	ttl   time.Duration
	rev   uint64
	held  bool
	until time.Time // local clock: the holder may write before this
}

// leaseRecord is the value of the lease key.
type leaseRecord struct {
	Holder string    `json:"holder"`
	At     time.Time `json:"at"`
}

// newControllerID names a controller: host, pid and a random suffix.
func newControllerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ensureLeaseBucket creates or updates the lease bucket (entries expire
// after ttl).
func ensureLeaseBucket(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "mciv steering: the lease of the one controller that writes routes",
		History: 1, TTL: ttl, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("steer: lease bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// acquire renews the lease, or takes it if nobody holds it; it reports
// whether this controller holds it now.
func (l *lease) acquire(ctx context.Context) bool {
	start := time.Now()
	val, _ := json.Marshal(leaseRecord{Holder: l.id, At: start})
	var rev uint64
	var err error
	if l.held {
		rev, err = l.kv.Update(ctx, leaseKey, val, l.rev)
	} else {
		rev, err = l.kv.Create(ctx, leaseKey, val)
	}
	if err != nil {
		l.held = false
		return false
	}
	l.held, l.rev, l.until = true, rev, start.Add(l.ttl*3/4)
	return true
}

// valid reports whether this controller may write routes now.
func (l *lease) valid() bool { return l.held && time.Now().Before(l.until) }

// holder returns who holds the lease ("" if nobody).
func (l *lease) holder(ctx context.Context) string {
	e, err := l.kv.Get(ctx, leaseKey)
	if err != nil {
		return ""
	}
	var r leaseRecord
	_ = json.Unmarshal(e.Value(), &r)
	return r.Holder
}

// release gives the lease up at once (only if still ours), so another
// controller takes over without waiting for the TTL.
func (l *lease) release(ctx context.Context) {
	if !l.held {
		return
	}
	l.held = false
	_ = l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(l.rev))
}
