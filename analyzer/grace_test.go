package analyzer

import (
	"testing"
	"time"
)

func TestGrace(t *testing.T) {
	var g grace
	now := t0
	if g.active(now) {
		t.Fatal("active at start")
	}
	if !g.start(now, 10*time.Second) || !g.active(now.Add(9*time.Second)) || g.active(now.Add(10*time.Second)) {
		t.Fatal("a grace of 10s")
	}
	if g.start(now.Add(time.Second), 5*time.Second) {
		t.Fatal("a shorter grace inside a longer one started anew")
	}
	if g.watch(nil, now, time.Second) {
		t.Fatal("watch without a connection")
	}
}
