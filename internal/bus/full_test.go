package bus

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestFullBucketIsStoreFull fills a real bucket to its MaxBytes: the
// refused write is recognised as a full store, named by bucket, and a
// read of the same bucket still works.
func TestFullBucketIsStoreFull(t *testing.T) {
	ctx := t.Context()
	js := startJetStream(ctx, t)
	kv, err := EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "TINY", MaxBytes: 64 << 10, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 4000)
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		_, full = kv.Put(ctx, fmt.Sprintf("k%d", i), val)
	}
	if full == nil {
		t.Fatal("a 64 KiB bucket took 400 KB")
	}
	if !IsStoreFull(full) {
		t.Fatalf("IsStoreFull(%v) = false", full)
	}
	err = fmt.Errorf("context: %w", NewStoreError("TINY", OpWrite, full))
	ses := StoreErrors(errors.Join(errors.New("other"), err))
	if len(ses) != 1 || ses[0].Bucket != "TINY" || !ses[0].Full() {
		t.Fatalf("StoreErrors = %v", ses)
	}
	if msg := err.Error(); !strings.Contains(msg, "bucket TINY is full") {
		t.Errorf("message %q does not name the full bucket", msg)
	}
	if _, err := kv.Get(ctx, "k0"); err != nil {
		t.Errorf("a full bucket refused a read: %v", err)
	}
	if IsStoreFull(errors.New("maximum bytes exceeded")) || IsStoreFull(nil) {
		t.Error("IsStoreFull matched a plain error")
	}
	if NewStoreError("X", OpRead, nil) != nil {
		t.Error("NewStoreError(nil) is not nil")
	}
}
