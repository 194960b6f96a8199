package slack

import (
	"context"
	"testing"
	"time"

	"github.com/mciv/mciv/notifier/route"
	"gopkg.in/yaml.v3"
)

func mustTree(t *testing.T, src string) *route.Tree {
	t.Helper()
	var p struct {
		Route     *route.Route     `yaml:"route"`
		Receivers []route.Receiver `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(src), &p); err != nil {
		t.Fatal(err)
	}
	tree, err := route.New(p.Route, p.Receivers)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestChannelLimiterSpacesCallsPerChannel(t *testing.T) {
	l := newLimiters(1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := l.wait(ctx, "C1"); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if err := l.wait(ctx, "C2"); err != nil {
		t.Fatalf("another channel is not held up: %v", err)
	}
	// The limiter knows at once that a second call to C1 cannot happen
	// within 100ms: no sleeping needed to see it.
	if err := l.wait(ctx, "C1"); err == nil {
		t.Fatal("a second call to C1 within a second was allowed")
	}
}
