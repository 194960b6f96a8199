package latbench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Note is one notification a system under test delivered: a Slack message
// for mciv, a webhook call for Alertmanager.
type Note struct {
	// At is when the benchmark received it.
	At time.Time
	// Firing is true for a notification that an alert fires, false for
	// one that it resolved.
	Firing bool
	// What describes it for the log (the Slack text, the webhook's
	// status and alert names).
	What string
}

// Feed is the list of notifications one system delivered, in arrival
// order, that the benchmark waits on. Its methods are safe for concurrent
// use.
type Feed struct {
	mu      sync.Mutex
	notes   []Note
	changed chan struct{} // closed and replaced when notes grows
}

// NewFeed returns an empty feed.
func NewFeed() *Feed { return &Feed{changed: make(chan struct{})} }

// Add records n.
func (f *Feed) Add(n Note) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notes = append(f.notes, n)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Notes returns a copy of every notification so far.
func (f *Feed) Notes() []Note {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.notes)
}

// Count returns how many notifications with the given Firing arrived in
// [from, to).
func (f *Feed) Count(firing bool, from, to time.Time) int {
	return len(f.Between(firing, from, to))
}

// Between returns the notifications with the given Firing that arrived in
// [from, to), in arrival order.
func (f *Feed) Between(firing bool, from, to time.Time) []Note {
	var out []Note
	for _, x := range f.Notes() {
		if x.Firing == firing && !x.At.Before(from) && x.At.Before(to) {
			out = append(out, x)
		}
	}
	return out
}

// Wait returns the first notification with the given Firing that arrived
// at or after since. It waits at most max, or until ctx ends.
func (f *Feed) Wait(ctx context.Context, firing bool, since time.Time, max time.Duration) (Note, error) {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		f.mu.Lock()
		notes, changed := f.notes, f.changed
		f.mu.Unlock()
		for _, n := range notes {
			if n.Firing == firing && !n.At.Before(since) {
				return n, nil
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			return Note{}, fmt.Errorf("no %s notification within %s", stateWord(firing), max)
		case <-ctx.Done():
			return Note{}, ctx.Err()
		}
	}
}

func stateWord(firing bool) string {
	if firing {
		return "firing"
	}
	return "resolved"
}
