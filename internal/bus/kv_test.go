package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestEnsureKeyValueReadsThroughTheLeader creates a bucket, finds direct
// gets off, updates it on a changed TTL (direct gets stay off) and
// recognises a failed compare-and-set.
func TestEnsureKeyValueReadsThroughTheLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := startJetStream(ctx, t)
	cfg := jetstream.KeyValueConfig{Bucket: "T", Description: "test", History: 1, Storage: jetstream.FileStorage}
	for i, ttl := range []time.Duration{0, 0, time.Hour} {
		cfg.TTL = ttl
		kv, err := EnsureKeyValue(ctx, js, cfg)
		if err != nil {
			t.Fatalf("EnsureKeyValue %d: %v", i, err)
		}
		s, err := js.Stream(ctx, "KV_T")
		if err != nil {
			t.Fatal(err)
		}
		if sc := s.CachedInfo().Config; sc.AllowDirect || sc.MaxAge != ttl {
			t.Fatalf("EnsureKeyValue %d: direct gets %v, max age %s (want off, %s)", i, sc.AllowDirect, sc.MaxAge, ttl)
		}
		rev, err := kv.Put(ctx, "k", []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != fmt.Sprint(i) {
			t.Fatalf("Get after Put: %v %v", e, err)
		}
		_, err = kv.Update(ctx, "k", []byte("x"), rev-1)
		if !IsConflict(err) {
			t.Fatalf("Update of an old revision: %v, not a conflict", err)
		}
		if _, err := kv.Create(ctx, "k", []byte("x")); !IsConflict(err) {
			t.Fatalf("Create of an existing key: %v, not a conflict", err)
		}
	}
	// A replicated stream answers a failed compare-and-set with 10164.
	r3 := fmt.Errorf("wrapped: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant})
	if !IsConflict(r3) || IsConflict(errors.New("timeout")) || IsConflict(nil) {
		t.Fatal("IsConflict")
	}
}
