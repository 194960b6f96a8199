package replay

import (
	"bytes"
	"testing"
	"time"
)

// FuzzReadSamples: a samples file (mciv record) never panics the reader.
func FuzzReadSamples(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("garbage\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = ReadSamples(bytes.NewReader(data), func(time.Time, []byte) error { return nil })
	})
}
