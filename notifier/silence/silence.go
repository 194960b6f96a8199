// Package silence keeps silences — label matchers with an expiry that mute
// matching alerts — in the JetStream key-value bucket MCIV_SILENCES, shared
// by every notifier replica, the CLI (`mciv silence add|list|expire`) and
// Slack's Silence buttons.
package silence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mciv/mciv/notifier/labels"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/bus"
)

// Bucket is the KV bucket of silences.
const Bucket = "MCIV_SILENCES"

// Silence mutes the alerts its matchers select between StartsAt and EndsAt.
type Silence struct {
	ID        string          `json:"id"`
	Matchers  labels.Matchers `json:"matchers"`
	StartsAt  time.Time       `json:"starts_at"`
	EndsAt    time.Time       `json:"ends_at"`
	CreatedBy string          `json:"created_by,omitempty"`
	Comment   string          `json:"comment,omitempty"`
}

// Active reports whether the silence mutes alerts at t.
func (s *Silence) Active(t time.Time) bool {
	return !t.Before(s.StartsAt) && t.Before(s.EndsAt)
}

// Store is the silences bucket. It is safe for concurrent use.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// Open creates or binds the bucket; now is the clock (nil: time.Now).
func Open(ctx context.Context, js jetstream.JetStream, replicas int, now func() time.Time) (*Store, error) {
	if replicas <= 0 {
		replicas = 1
	}
	if now == nil {
		now = time.Now
	}
	kv, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "mciv silences (matchers with an expiry)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		// Silences are few and made by people; 8 MiB holds tens of
		// thousands. A full bucket refuses a new silence with a clear
		// error (Add) rather than dropping an existing one.
		MaxBytes: 8 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("silence: bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv, now: now}, nil
}

// NewID returns a random silence id.
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// validID keeps ids usable as KV keys.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool {
		return !(r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0
}

// Add stores s. An empty ID gets a random one, a zero StartsAt is now. A
// silence with the same ID that already exists is left as it is (adding is
// idempotent, so a retried Slack button press creates one silence). It
// returns the silence as stored.
func (st *Store) Add(ctx context.Context, s Silence) (*Silence, error) {
	if len(s.Matchers) == 0 {
		return nil, errors.New("silence: at least one matcher is required")
	}
	if s.ID == "" {
		s.ID = NewID()
	}
	if !validID(s.ID) {
		return nil, fmt.Errorf("silence: invalid id %q", s.ID)
	}
	if s.StartsAt.IsZero() {
		s.StartsAt = st.now()
	}
	if !s.EndsAt.After(s.StartsAt) {
		return nil, errors.New("silence: it must end after it starts")
	}
	data, err := json.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("silence: encode: %w", err)
	}
	if _, err := st.kv.Create(ctx, s.ID, data); err != nil {
		if bus.IsConflict(err) {
			return st.Get(ctx, s.ID)
		}
		return nil, fmt.Errorf("silence: add %s: %w", s.ID, bus.NewStoreError(Bucket, bus.OpWrite, err))
	}
	return &s, nil
}

// Get returns one silence.
func (st *Store) Get(ctx context.Context, id string) (*Silence, error) {
	if !validID(id) {
		return nil, fmt.Errorf("silence: invalid id %q", id)
	}
	e, err := st.kv.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("silence %s: %w", id, err)
	}
	var s Silence
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, fmt.Errorf("silence %s: decode: %w", id, err)
	}
	return &s, nil
}

// List returns every silence, active and expired, newest end first.
func (st *Store) List(ctx context.Context) ([]*Silence, error) {
	lister, err := st.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("silence: list: %w", err)
	}
	var out []*Silence
	for k := range lister.Keys() {
		s, err := st.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Silence) int { return b.EndsAt.Compare(a.EndsAt) })
	return out, nil
}

// Expire ends a silence now (it stays listed, expired).
func (st *Store) Expire(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("silence: invalid id %q", id)
	}
	for {
		e, err := st.kv.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("silence %s: %w", id, err)
		}
		var s Silence
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return fmt.Errorf("silence %s: decode: %w", id, err)
		}
		now := st.now()
		if !s.EndsAt.After(now) {
			return nil
		}
		s.EndsAt = now
		if s.StartsAt.After(now) {
			s.StartsAt = now
		}
		data, _ := json.Marshal(&s)
		if _, err := st.kv.Update(ctx, id, data, e.Revision()); err != nil {
			if ctx.Err() == nil && bus.IsConflict(err) {
				continue
			}
			return fmt.Errorf("silence %s: expire: %w", id, err)
		}
		return nil
	}
}

// Silenced returns the active silence that mutes the label set, or nil.
func (st *Store) Silenced(ctx context.Context, ls map[string]string) (*Silence, error) {
	all, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	now := st.now()
	for _, s := range all {
		if s.Active(now) && s.Matchers.Matches(ls) {
			return s, nil
		}
	}
	return nil, nil
}
