package tts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCacheLRUBound(t *testing.T) {
	c, err := NewCache(CacheConfig{MaxBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	clip := func(s string) Audio { return NewAudio([]byte(s), FormatWAV, "e") }
	c.Put("a", clip("aaaa"), true)
	c.Put("b", clip("bbbb"), true)
	if _, ok := c.Get("a"); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	c.Put("c", clip("cccc"), true) // 12 bytes > 10: evicts b
	if _, ok := c.Get("b"); ok {
		t.Error("b kept although least recently used")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if n, size := c.Len(); n != 2 || size != 8 {
		t.Errorf("Len = %d clips, %d bytes", n, size)
	}
	c.Put("huge", clip(strings.Repeat("x", 11)), true)
	if _, ok := c.Get("huge"); ok {
		t.Error("clip larger than the cache kept")
	}
	c.Put("a", clip("a2"), true)
	if got, _ := c.Get("a"); string(got.Data) != "a2" {
		t.Errorf("replaced clip = %q", got.Data)
	}
	if _, size := c.Len(); size != 6 {
		t.Errorf("size after replace = %d, want 6", size)
	}
}

func TestCacheDiskSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	key := CacheKey(Request{Text: "Critical."}, []string{"google"})
	c1, err := NewCache(CacheConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c1.Put(key, NewAudio([]byte("OggS..."), FormatOggVorbis, "espeak"), true)
	if _, err := os.Stat(filepath.Join(dir, key+".ogg")); err != nil {
		t.Fatalf("clip file: %v", err)
	}
	c2, err := NewCache(CacheConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c2.Get(key)
	if !ok {
		t.Fatal("clip not found by a new cache on the same directory")
	}
	if string(got.Data) != "OggS..." || got.Format != FormatOggVorbis || got.Engine != "espeak" || got.MIMEType != "audio/ogg" {
		t.Errorf("got %+v", got)
	}
	if n, _ := c2.Len(); n != 1 {
		t.Error("disk hit not kept in memory")
	}
}

func TestCacheDiskDamage(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCache(CacheConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	key := CacheKey(Request{Text: "x"}, nil)
	c.Put(key, NewAudio([]byte("RIFF1234"), FormatWAV, "e"), true)
	// A truncated clip is a miss, not bad audio.
	if err := os.WriteFile(filepath.Join(dir, key+".wav"), []byte("RIFF"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh, _ := NewCache(CacheConfig{Dir: dir})
	if _, ok := fresh.Get(key); ok {
		t.Error("truncated clip served")
	}
	// Transient clips are not written.
	k2 := CacheKey(Request{Text: "y"}, nil)
	c.Put(k2, NewAudio([]byte("RIFF"), FormatWAV, "e"), false)
	if _, err := os.Stat(filepath.Join(dir, k2+".json")); !os.IsNotExist(err) {
		t.Errorf("transient clip written to disk (stat err %v)", err)
	}
	// Keys that are not hashes never touch the file system.
	if _, ok := fresh.Get("../../etc/passwd"); ok {
		t.Error("odd key found")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestChainDiskCacheSurvivesNewChain(t *testing.T) {
	dir := t.TempDir()
	req := Request{Text: "Critical. Query latency on host d b 1.", Format: FormatMulaw8k}
	speak := func() (*fakeEngine, Audio) {
		cache, err := NewCache(CacheConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		e := &fakeEngine{name: "google"}
		c := newChain(t, ChainConfig{Cache: cache}, e, &fakeEngine{name: "espeak"})
		a, err := c.Synthesize(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		return e, a
	}
	e1, a1 := speak()
	e2, a2 := speak()
	if e1.calls.Load() != 1 || e2.calls.Load() != 0 {
		t.Errorf("calls: first chain %d, second chain %d; want 1, 0", e1.calls.Load(), e2.calls.Load())
	}
	if string(a1.Data) != string(a2.Data) || a2.Format != FormatMulaw8k || a2.Engine != "google" {
		t.Errorf("restored clip %+v differs from %+v", a2, a1)
	}
}
