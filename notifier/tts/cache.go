package tts

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// CacheConfig configures a Cache.
type CacheConfig struct {
	// MaxBytes bounds the audio kept in memory; the least recently used
	// clips are dropped first. 0 means 32 MiB.
	MaxBytes int64
	// Dir, when set, keeps clips on disk too, so that they survive a
	// restart: <sha256>.<ext> holds the audio and <sha256>.json what it
	// is. The directory is created if needed; nothing in it is ever
	// deleted by the cache.
	Dir string
	// TransientTTL is how long a clip stored as not durable (spoken by a
	// fallback engine) is served from memory, so that the preferred
	// engine is asked again once it is back. 0 means 10 minutes.
	TransientTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives disk errors (the cache then acts as a miss);
	// nil means slog.Default().
	Logger *slog.Logger
}

// Cache keeps synthesized clips by CacheKey: in memory (LRU, bounded by
// size) and, optionally, in a directory. It is safe for concurrent use.
type Cache struct {
	cfg    CacheConfig
	logger *slog.Logger

	mu    sync.Mutex
	lru   *list.List // of *cacheEntry, most recently used first
	items map[string]*list.Element
	bytes int64
}

// cacheEntry is one clip in memory.
type cacheEntry struct {
	key     string
	audio   Audio
	expires time.Time // zero: never
}

// NewCache returns an empty cache, creating cfg.Dir if set.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 32 << 20
	}
	if cfg.TransientTTL <= 0 {
		cfg.TransientTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("tts cache: %w", err)
		}
	}
	return &Cache{cfg: cfg, logger: logger, lru: list.New(), items: map[string]*list.Element{}}, nil
}

// CacheKey returns the key of the clip for req spoken by a chain of the
// named engines: the hex SHA-256 of the normalized request (text, SSML,
// voice, language, rate, format) and the engine order.
func CacheKey(req Request, engines []string) string {
	if n, err := req.Normalize(); err == nil {
		req = n
	}
	b, _ := json.Marshal(struct {
		Text     string   `json:"text"`
		SSML     bool     `json:"ssml"`
		Voice    string   `json:"voice"`
		Language string   `json:"language"`
		Rate     string   `json:"rate"`
		Format   string   `json:"format"`
		Engines  []string `json:"engines"`
	}{req.Text, req.SSML, req.Voice, req.Language, strconv.FormatFloat(req.Rate, 'g', -1, 64), req.Format.String(), engines})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Get returns the clip stored under key, from memory or else from disk.
func (c *Cache) Get(key string) (Audio, bool) {
	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		if e.expires.IsZero() || c.cfg.Now().Before(e.expires) {
			c.lru.MoveToFront(el)
			a := e.audio
			c.mu.Unlock()
			return a, true
		}
		c.remove(el)
	}
	c.mu.Unlock()

	if c.cfg.Dir == "" || !validKey(key) {
		return Audio{}, false
	}
	a, err := c.readDisk(key)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.logger.Warn("tts cache: unreadable clip, synthesizing again", "key", key, "err", err)
		}
		return Audio{}, false
	}
	c.putMemory(key, a, time.Time{})
	return a, true
}

// Put stores a clip under key. A durable clip is kept until evicted and
// written to the directory; one that is not (spoken by a fallback engine)
// is kept in memory for TransientTTL only.
func (c *Cache) Put(key string, a Audio, durable bool) {
	var expires time.Time
	if !durable {
		expires = c.cfg.Now().Add(c.cfg.TransientTTL)
	}
	c.putMemory(key, a, expires)
	if durable && c.cfg.Dir != "" && validKey(key) {
		if err := c.writeDisk(key, a); err != nil {
			c.logger.Warn("tts cache: clip not written to disk", "key", key, "err", err)
		}
	}
}

// Len returns the number of clips in memory and their total size.
func (c *Cache) Len() (clips int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}

// putMemory stores a clip in memory and evicts the least recently used
// clips beyond MaxBytes. A clip larger than MaxBytes is not kept.
func (c *Cache) putMemory(key string, a Audio, expires time.Time) {
	size := int64(len(a.Data))
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	if size > c.cfg.MaxBytes {
		return
	}
	c.items[key] = c.lru.PushFront(&cacheEntry{key: key, audio: a, expires: expires})
	c.bytes += size
	for c.bytes > c.cfg.MaxBytes {
		c.remove(c.lru.Back())
	}
}

// remove drops one entry; c.mu is held.
func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	c.bytes -= int64(len(e.audio.Data))
}

// validKey reports whether key is a hex SHA-256 (and so a safe file name).
func validKey(key string) bool {
	if len(key) != 64 {
		return false
	}
	_, err := hex.DecodeString(key)
	return err == nil
}

// diskMeta is the <key>.json file beside a clip.
type diskMeta struct {
	Format  string    `json:"format"`
	Engine  string    `json:"engine"`
	Size    int       `json:"size"`
	Created time.Time `json:"created"`
}

// readDisk loads a clip: the metadata file is written last, so a clip
// without one, or with a different size, is incomplete.
func (c *Cache) readDisk(key string) (Audio, error) {
	mb, err := os.ReadFile(filepath.Join(c.cfg.Dir, key+".json"))
	if err != nil {
		return Audio{}, err
	}
	var m diskMeta
	if err := json.Unmarshal(mb, &m); err != nil {
		return Audio{}, fmt.Errorf("metadata: %w", err)
	}
	f, err := ParseFormat(m.Format)
	if err != nil {
		return Audio{}, err
	}
	data, err := os.ReadFile(filepath.Join(c.cfg.Dir, key+f.Ext()))
	if err != nil {
		return Audio{}, err
	}
	if len(data) != m.Size {
		return Audio{}, fmt.Errorf("clip has %d bytes, metadata says %d", len(data), m.Size)
	}
	return NewAudio(data, f, m.Engine), nil
}

// writeDisk stores a clip: audio first, then its metadata, each written to
// a temporary file and renamed into place.
func (c *Cache) writeDisk(key string, a Audio) error {
	if !a.Format.valid() {
		return fmt.Errorf("unknown format %d", int(a.Format))
	}
	if err := writeFileAtomic(filepath.Join(c.cfg.Dir, key+a.Format.Ext()), a.Data); err != nil {
		return err
	}
	mb, err := json.Marshal(diskMeta{Format: a.Format.String(), Engine: a.Engine, Size: len(a.Data), Created: c.cfg.Now().UTC()})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.cfg.Dir, key+".json"), mb)
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it to path, so that readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
