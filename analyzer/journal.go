package analyzer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// JournalFile is the name of the outbox's journal in Config.OutboxDir.
const JournalFile = "outbox.journal"

// compactAt is the journal size above which it is rewritten with only
// the changes still waiting.
const compactAt = 1 << 20

// journal is the outbox on disk: every alert state change the analyzer
// decided is appended (and fsynced) before it is queued for JetStream,
// and marked done once JetStream acknowledged it, so that a crash or a
// kill loses nothing accepted: the next start replays what is not done.
// One JSON record per line; a torn last line (a crash mid-write) is
// ignored. The journal is emptied whenever nothing waits, and compacted
// when it grows past compactAt. A lock (flock) keeps a second analyzer
// off the same journal.
type journal struct {
	path string
	f    *os.File
	w    *bufio.Writer
	next uint64 // the id of the next record
	size int64  // bytes in the file
	live int    // records not done
}

// jrecord is one line of the journal: a change (Kind set) or the mark
// that change ID is done (published, or dropped).
type jrecord struct {
	ID   uint64 `json:"id"`
	Done bool   `json:"done,omitempty"`
	// Kind is "alert", "action" or "state".
	Kind    string `json:"kind,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Data is the message (alert, action) or the state's JSON; a state
	// without Data is deleted.
	Data []byte `json:"data,omitempty"`
	// FP and Rule name a state (for a delete, all there is of it).
	FP   string `json:"fp,omitempty"`
	Rule string `json:"rule,omitempty"`
}

const (
	kindAlert  = "alert"
	kindAction = "action"
	kindState  = "state"
)

// openJournal opens (creating it) the journal in dir, locks it, and
// returns it with the changes it holds that are not done, in order, and
// how many lines it skipped as unreadable.
func openJournal(dir string) (*journal, []jrecord, int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, 0, fmt.Errorf("analyzer outbox: %w", err)
	}
	path := filepath.Join(dir, JournalFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("analyzer outbox: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("analyzer outbox %s is in use by another analyzer (give each its own data_dir): %w", path, err)
	}
	pending, next, bad, err := readJournal(f)
	if err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("analyzer outbox %s: %w", path, err)
	}
	j := &journal{path: path, f: f, next: next}
	// Start from a compact file: what waits, nothing else.
	if err := j.rewrite(pending); err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	return j, pending, bad, nil
}

// readJournal returns the records of r that are not done, in order, the
// next free id and the number of unreadable lines.
func readJournal(r io.Reader) ([]jrecord, uint64, int, error) {
	var (
		recs []jrecord
		done = map[uint64]bool{}
		next uint64
		bad  int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec jrecord
		if err := json.Unmarshal(line, &rec); err != nil || (!rec.Done && rec.Kind == "") {
			bad++
			continue
		}
		next = max(next, rec.ID+1)
		if rec.Done {
			done[rec.ID] = true
			continue
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, 0, err
	}
	var pending []jrecord
	for _, rec := range recs {
		if !done[rec.ID] {
			pending = append(pending, rec)
		}
	}
	return pending, next, bad, nil
}

// add appends changes (their IDs are set) and syncs them to disk.
func (j *journal) add(recs []*jrecord) error {
	for _, rec := range recs {
		rec.ID = j.next
		j.next++
		if err := j.write(rec); err != nil {
			return err
		}
	}
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("analyzer outbox %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("analyzer outbox %s: sync: %w", j.path, err)
	}
	j.live += len(recs)
	return nil
}

// done marks change id done. It is not synced: a mark lost in a crash
// replays a change JetStream already has, which its message id dedups
// (a state write is idempotent). pending is what still waits, for a
// compaction.
func (j *journal) done(id uint64, pending func() []jrecord) error {
	j.live--
	if j.live <= 0 {
		j.live = 0
		return j.rewrite(nil)
	}
	if err := j.write(&jrecord{ID: id, Done: true}); err != nil {
		return err
	}
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("analyzer outbox %s: %w", j.path, err)
	}
	if j.size > compactAt {
		return j.rewrite(pending())
	}
	return nil
}

func (j *journal) write(rec *jrecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("analyzer outbox: encode: %w", err)
	}
	b = append(b, '\n')
	n, err := j.w.Write(b)
	j.size += int64(n)
	if err != nil {
		return fmt.Errorf("analyzer outbox %s: %w", j.path, err)
	}
	return nil
}

// rewrite replaces the journal by recs: written to a new file, synced,
// and renamed over the old one, so that a crash leaves one or the other.
func (j *journal) rewrite(recs []jrecord) error {
	if len(recs) == 0 && j.size == 0 && j.w != nil {
		return nil
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("analyzer outbox: %w", err)
	}
	w := bufio.NewWriter(f)
	nj := &journal{path: j.path, f: f, w: w, next: j.next}
	for i := range recs {
		if err := nj.write(&recs[i]); err != nil {
			f.Close()
			return err
		}
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("analyzer outbox %s: rewrite: %w", j.path, err)
	}
	syncDir(filepath.Dir(j.path))
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.w, j.size, j.live = f, w, nj.size, len(recs)
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("analyzer outbox %s: %w", j.path, err)
	}
	return nil
}

// close flushes and closes the journal (what waits stays in it).
func (j *journal) close() error {
	if j == nil || j.f == nil {
		return nil
	}
	err := j.w.Flush()
	if serr := j.f.Sync(); err == nil {
		err = serr
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("analyzer outbox %s: %w", j.path, err)
	}
	return nil
}

// syncDir syncs a directory, so that a rename in it survives a crash.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
