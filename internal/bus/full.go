package bus

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream API error codes of a store that has no room left.
const (
	// errCodeMaxBytes: a stream or bucket with discard-new (every KV
	// bucket) is at its MaxBytes.
	errCodeMaxBytes jetstream.ErrorCode = 10077
	// errCodeStorageResources: the server's or account's file store
	// (max_store) cannot take the request.
	errCodeStorageResources jetstream.ErrorCode = 10047
	// errCodeInsufficientResources: the server is out of resources (a
	// full disk among them).
	errCodeInsufficientResources jetstream.ErrorCode = 10023
)

// IsStoreFull reports whether err says that JetStream refused a write
// because a bucket, a stream or the server's store has no room left.
func IsStoreFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeMaxBytes, errCodeStorageResources, errCodeInsufficientResources:
		return true
	}
	return false
}

// Store operations named by StoreError.
const (
	OpRead  = "read"
	OpWrite = "write"
)

// StoreError is a failed read or write of a KV bucket: it names the
// bucket, so that a caller can count the failure by bucket and a person
// reads which bucket is at fault. It carries no value and no key.
type StoreError struct {
	Bucket string
	Op     string // OpRead or OpWrite
	Err    error
}

// NewStoreError wraps err as a failed op on bucket; nil stays nil.
func NewStoreError(bucket, op string, err error) error {
	if err == nil {
		return nil
	}
	return &StoreError{Bucket: bucket, Op: op, Err: err}
}

func (e *StoreError) Error() string {
	if e.Full() {
		return fmt.Sprintf("JetStream bucket %s is full: %s refused: %v", e.Bucket, e.Op, e.Err)
	}
	return fmt.Sprintf("JetStream bucket %s: %s failed: %v", e.Bucket, e.Op, e.Err)
}

func (e *StoreError) Unwrap() error { return e.Err }

// Full reports whether the bucket (or the server's store) had no room.
func (e *StoreError) Full() bool { return IsStoreFull(e.Err) }

// StoreErrors returns every StoreError joined or wrapped in err.
func StoreErrors(err error) []*StoreError {
	if err == nil {
		return nil
	}
	if se, ok := err.(*StoreError); ok {
		return []*StoreError{se}
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var out []*StoreError
		for _, e := range u.Unwrap() {
			out = append(out, StoreErrors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return StoreErrors(u.Unwrap())
	}
	return nil
}
