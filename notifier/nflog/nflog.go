// Package nflog is Marvel's notification log, kept in the JetStream
// key-value bucket MCIV_NFLOG so that it survives restarts and is shared by
// notifier replicas (after Alertmanager's nflog, which gossips instead).
//
// Per alert group and receiver an Entry records the group's alerts as last
// seen, what was last sent (a hash of the group state, when), and where it
// lives in Slack (channel id and message ts): it drives deduplication,
// group_interval and repeat_interval, and lets any replica update the
// message in place and reply in its thread.
//
// Every write is a compare-and-set on the key's revision (KV Create for a
// new group, Update with the last revision otherwise), so two replicas never
// both believe they own a transition: before sending, a replica writes a
// Claim; a replica that finds a fresh claim of another one waits.
package nflog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/bus"
)

// Bucket is the name of the KV bucket.
const Bucket = "MCIV_NFLOG"

// Entry is the notification state of one alert group for one receiver.
type Entry struct {
	GroupKey    string                 `json:"group_key"`
	Receiver    string                 `json:"receiver"`
	GroupLabels map[string]string      `json:"group_labels,omitempty"`
	Alerts      map[string]*wire.Alert `json:"alerts"` // latest state by fingerprint
	FirstSeen   time.Time              `json:"first_seen"`

	// Where the group's message lives; empty until it is posted.
	Channel   string `json:"channel,omitempty"`
	ChannelID string `json:"channel_id,omitempty"`
	TS        string `json:"ts,omitempty"`

	// What was sent last.
	SentHash   string                     `json:"sent_hash,omitempty"`
	SentStates map[string]wire.AlertState `json:"sent_states,omitempty"`
	SentAt     time.Time                  `json:"sent_at,omitzero"`

	// RepeatInterval is how often a group still firing and not
	// acknowledged is brought up again (from its route).
	RepeatInterval time.Duration `json:"repeat_interval,omitempty"`

	// Claim marks a send in progress.
	Claim *Claim `json:"claim,omitempty"`

	// AckedBy is who acknowledged the group's incident, if anyone.
	AckedBy string    `json:"acked_by,omitempty"`
	AckedAt time.Time `json:"acked_at,omitzero"`
	// ResolvedBy is who declared the incident over (the Resolve button).
	ResolvedBy string `json:"resolved_by,omitempty"`
	// Seen holds the ids of the acknowledgements and actions already
	// replied to in the thread (the most recent ones).
	Seen []string `json:"seen,omitempty"`
}

// Claim says that a replica is sending the group state with hash Hash.
type Claim struct {
	Hash string    `json:"hash"`
	By   string    `json:"by"`
	At   time.Time `json:"at"`
}

// StateHash identifies the group state the alert pipeline notifies: the
// alerts and their states (not their values, which change without a new
// notification, nor acknowledgements, which update the message on their own).
func (e *Entry) StateHash() string {
	h := sha256.New()
	for _, fp := range slices.Sorted(maps.Keys(e.Alerts)) {
		fmt.Fprintf(h, "%s=%s\x00", fp, e.Alerts[fp].State)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// States returns each alert's state.
func (e *Entry) States() map[string]wire.AlertState {
	out := make(map[string]wire.AlertState, len(e.Alerts))
	for fp, a := range e.Alerts {
		out[fp] = a.State
	}
	return out
}

// Resolved reports whether every alert of the group has resolved.
func (e *Entry) Resolved() bool {
	for _, a := range e.Alerts {
		if a.State != wire.StateResolved {
			return false
		}
	}
	return true
}

// Sorted returns the alerts, firing first, then by rule and fingerprint.
func (e *Entry) Sorted() []*wire.Alert {
	out := slices.Collect(maps.Values(e.Alerts))
	slices.SortFunc(out, func(a, b *wire.Alert) int {
		if (a.State == wire.StateFiring) != (b.State == wire.StateFiring) {
			if a.State == wire.StateFiring {
				return -1
			}
			return 1
		}
		if a.Rule != b.Rule {
			if a.Rule < b.Rule {
				return -1
			}
			return 1
		}
		if a.Fingerprint < b.Fingerprint {
			return -1
		}
		if a.Fingerprint > b.Fingerprint {
			return 1
		}
		return 0
	})
	return out
}

// Errors of the compare-and-set operations.
var (
	// ErrConflict means the entry changed since it was read.
	ErrConflict = errors.New("nflog: entry changed concurrently")
)

// OpTimeout bounds one request to the bucket. A request lost with a NATS
// node (sent to a server killed or cut off before it answered) fails
// after OpTimeout instead of holding the caller for its whole deadline
// (a notification's is a minute); Modify tries again.
const OpTimeout = 5 * time.Second

// op is ctx bounded by OpTimeout, for one request.
func op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, OpTimeout)
}

// transient reports whether err (of a request made under ctx) may go away
// when the request is made again: it timed out on its own bound, or found
// no stream to answer it (a leader election).
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// Log is the notification log. It is safe for concurrent use.
type Log struct {
	kv jetstream.KeyValue
}

// Options tunes the bucket.
type Options struct {
	// Replicas of the bucket (1 for the embedded server).
	Replicas int
	// TTL is how long an untouched entry is kept. Default 7 days.
	TTL time.Duration
}

// Open creates or binds the bucket.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Log, error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.TTL <= 0 {
		opts.TTL = 7 * 24 * time.Hour
	}
	kv, err := bus.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "mciv notifier notification log (what was sent where, per alert group)",
		History:     1,
		TTL:         opts.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
		// What was sent where, per alert group, expiring after TTL. When
		// full, writes are refused (KV cannot discard old keys): the
		// notifier delivers anyway and counts the failed write.
		MaxBytes: 32 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("nflog: bucket %s: %w", Bucket, err)
	}
	return &Log{kv: kv}, nil
}

func groupKey(key string) string { return "g." + key }

// fpKey is the index key of an alert fingerprint; fingerprints that are
// not valid key tokens are hashed.
func fpKey(fp string) string {
	for _, r := range fp {
		if !(r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
			s := sha256.Sum256([]byte(fp))
			return "fp." + hex.EncodeToString(s[:16])
		}
	}
	return "fp." + fp
}

// Get returns the entry of a group and its revision; nil and 0 when there
// is none.
func (l *Log) Get(ctx context.Context, key string) (*Entry, uint64, error) {
	octx, cancel := op(ctx)
	defer cancel()
	kve, err := l.kv.Get(octx, groupKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("nflog: get %s: %w", key, err)
	}
	var e Entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return nil, 0, fmt.Errorf("nflog: decode %s: %w", key, err)
	}
	if e.Alerts == nil {
		e.Alerts = map[string]*wire.Alert{}
	}
	return &e, kve.Revision(), nil
}

// Put writes e if the stored revision is still rev (0: the entry must not
// exist). It returns the new revision, or ErrConflict.
func (l *Log) Put(ctx context.Context, e *Entry, rev uint64) (uint64, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("nflog: encode %s: %w", e.GroupKey, err)
	}
	var nrev uint64
	octx, cancel := op(ctx)
	defer cancel()
	if rev == 0 {
		nrev, err = l.kv.Create(octx, groupKey(e.GroupKey), data)
	} else {
		nrev, err = l.kv.Update(octx, groupKey(e.GroupKey), data, rev)
	}
	if err != nil {
		if bus.IsConflict(err) {
			return 0, ErrConflict
		}
		return 0, fmt.Errorf("nflog: write %s: %w", e.GroupKey, err)
	}
	return nrev, nil
}

// Modify applies fn to the group's entry (nil when there is none) and
// writes the result with compare-and-set, re-reading and retrying on
// conflict, and after a request that timed out or found no leader (a
// write that timed out may have been stored: the next attempt reads it
// back, and fn sees it). fn returns the entry to write, or nil to write
// nothing. Modify returns the entry as stored and its revision.
func (l *Log) Modify(ctx context.Context, key string, fn func(e *Entry) (*Entry, error)) (*Entry, uint64, error) {
	for {
		e, rev, err := l.Get(ctx, key)
		if transient(ctx, err) {
			if !pause(ctx) {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		ne, err := fn(e)
		if err != nil {
			return nil, 0, err
		}
		if ne == nil {
			return e, rev, nil
		}
		ne.GroupKey = key
		nrev, err := l.Put(ctx, ne, rev)
		if errors.Is(err, ErrConflict) {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			continue
		}
		if transient(ctx, err) {
			if !pause(ctx) {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return ne, nrev, nil
	}
}

// pause waits a moment before a request is made again; it reports
// whether ctx is still alive.
func pause(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(250 * time.Millisecond):
		return true
	}
}

// Index records that the alert with fingerprint fp belongs to the group
// key (for thread replies about that alert: acks, silences, failovers).
func (l *Log) Index(ctx context.Context, fp, key string) error {
	keys, err := l.Groups(ctx, fp)
	if err != nil {
		return err
	}
	if slices.Contains(keys, key) {
		return nil
	}
	keys = append(keys, key)
	data, _ := json.Marshal(keys)
	octx, cancel := op(ctx)
	defer cancel()
	if _, err := l.kv.Put(octx, fpKey(fp), data); err != nil {
		return fmt.Errorf("nflog: index %s: %w", fp, err)
	}
	return nil
}

// Groups returns the group keys the alert with fingerprint fp was sent in.
func (l *Log) Groups(ctx context.Context, fp string) ([]string, error) {
	octx, cancel := op(ctx)
	defer cancel()
	kve, err := l.kv.Get(octx, fpKey(fp))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nflog: index %s: %w", fp, err)
	}
	var keys []string
	if err := json.Unmarshal(kve.Value(), &keys); err != nil {
		return nil, fmt.Errorf("nflog: index %s: %w", fp, err)
	}
	return keys, nil
}

// Entries returns every group entry (for repeat_interval and inhibition).
func (l *Log) Entries(ctx context.Context) ([]*Entry, error) {
	keys, err := l.keys(ctx, "g.>")
	if err != nil {
		return nil, fmt.Errorf("nflog: list: %w", err)
	}
	var out []*Entry
	for _, k := range keys {
		e, _, err := l.Get(ctx, k[len("g."):])
		if err != nil {
			return nil, err
		}
		if e != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// keys lists the keys matching filter, within OpTimeout.
func (l *Log) keys(ctx context.Context, filter string) ([]string, error) {
	octx, cancel := op(ctx)
	defer cancel()
	lister, err := l.kv.ListKeysFiltered(octx, filter)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if octx.Err() != nil {
		return nil, octx.Err() // cut short: the list is not complete
	}
	return keys, nil
}

func alertKey(fp string) string { return "a" + fpKey(fp)[len("fp"):] }

// RecordAlert remembers the latest state of an alert (every alert the
// notifier sees, muted or not), for inhibition; a state older than the one
// stored is ignored, a resolved alert is forgotten.
func (l *Log) RecordAlert(ctx context.Context, a *wire.Alert) error {
	key := alertKey(a.Fingerprint)
	for {
		var rev uint64
		octx, cancel := op(ctx)
		kve, err := l.kv.Get(octx, key)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("nflog: alert %s: %w", a.Fingerprint, err)
		default:
			rev = kve.Revision()
			var old wire.Alert
			if json.Unmarshal(kve.Value(), &old) == nil && old.At.After(a.At) {
				return nil
			}
		}
		data, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("nflog: alert %s: %w", a.Fingerprint, err)
		}
		octx, cancel = op(ctx)
		if rev == 0 {
			_, err = l.kv.Create(octx, key, data)
		} else {
			_, err = l.kv.Update(octx, key, data, rev)
		}
		cancel()
		if err == nil {
			return nil
		}
		if bus.IsConflict(err) && ctx.Err() == nil {
			continue
		}
		return fmt.Errorf("nflog: alert %s: %w", a.Fingerprint, err)
	}
}

// FiringAlerts returns the alerts whose latest recorded state is firing.
func (l *Log) FiringAlerts(ctx context.Context) ([]*wire.Alert, error) {
	keys, err := l.keys(ctx, "a.>")
	if err != nil {
		return nil, fmt.Errorf("nflog: list alerts: %w", err)
	}
	var out []*wire.Alert
	for _, k := range keys {
		gctx, gcancel := op(ctx)
		kve, err := l.kv.Get(gctx, k)
		gcancel()
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("nflog: alert %s: %w", k, err)
		}
		var a wire.Alert
		if err := json.Unmarshal(kve.Value(), &a); err != nil {
			continue
		}
		if a.State == wire.StateFiring {
			out = append(out, &a)
		}
	}
	return out, nil
}
