package bus

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedRefusesOpenNonLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := StartEmbedded(ctx, EmbeddedOptions{DataDir: t.TempDir(), Listen: "0.0.0.0:0"}, nil)
	if err == nil || !strings.Contains(err.Error(), "mciv auth init") {
		t.Fatalf("StartEmbedded on 0.0.0.0 without auth: %v, want a refusal naming `mciv auth init`", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "0.0.0.0": false, "": false, "10.0.0.1": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
}
