// Package storelab fills JetStream buckets to the brim, for tests of what
// mciv does when its store is full (a flood of forged or real alerts, a
// bucket that grew to its MaxBytes).
package storelab

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mciv/mciv/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Fill writes junk keys ("storelab-<n>", holding a JSON object that
// decodes as an empty value of any mciv type) into bucket until JetStream
// refuses a write as full, then tries ever smaller values so that not even
// a small entry fits. It returns the bytes written, or an error if the
// bucket took 1 GiB or refused a write for another reason.
func Fill(ctx context.Context, js jetstream.JetStream, bucket string) (int64, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return 0, fmt.Errorf("storelab: bucket %s: %w", bucket, err)
	}
	var written int64
	n := 0
	for size := 512 << 10; size >= 64; {
		if written > 1<<30 {
			return written, fmt.Errorf("storelab: bucket %s took 1 GiB and is not full", bucket)
		}
		_, err := kv.Put(ctx, fmt.Sprintf("%s%d", prefix, n), junk(size))
		n++
		switch {
		case err == nil:
			written += int64(size)
		case bus.IsStoreFull(err):
			size /= 4
		default:
			return written, fmt.Errorf("storelab: filling %s: %w", bucket, err)
		}
	}
	return written, nil
}

// prefix starts every key Fill writes.
const prefix = "storelab-"

// junk is a JSON object of about size bytes.
func junk(size int) []byte {
	b := make([]byte, 0, size+16)
	b = append(b, `{"storelab":"`...)
	for len(b) < size {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// Empty purges what Fill wrote into bucket.
func Empty(ctx context.Context, js jetstream.JetStream, bucket string) error {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return fmt.Errorf("storelab: bucket %s: %w", bucket, err)
	}
	s, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("storelab: bucket %s: %w", bucket, err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return fmt.Errorf("storelab: bucket %s: %w", bucket, err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if err := s.Purge(ctx, jetstream.WithPurgeSubject("$KV."+bucket+"."+k)); err != nil {
			return fmt.Errorf("storelab: emptying %s: %w", bucket, err)
		}
	}
	return nil
}
