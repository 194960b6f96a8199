package score

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestLoadCancelled: a done context stops Load with its error, wrapped
// with the corpus directory.
func TestLoadCancelled(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, testCorpus()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, err := Load(ctx, dir, "")
	if !errors.Is(err, context.Canceled) || c != nil {
		t.Fatalf("cancelled: error %v, corpus returned %t", err, c != nil)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name %s", err, dir)
	}
	if _, err := Load(context.Background(), dir, ""); err != nil {
		t.Errorf("not cancelled: %v", err)
	}
}
