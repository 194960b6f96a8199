package analyzer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJournalReplaysWhatIsNotDone(t *testing.T) {
	dir := t.TempDir()
	j, pending, bad, err := openJournal(dir)
	if err != nil || len(pending) != 0 || bad != 0 {
		t.Fatalf("new journal: %v %v %d", err, pending, bad)
	}
	recs := []*jrecord{{Kind: kindAlert, Subject: "s1", Data: []byte("a")}, {Kind: kindState, FP: "fp", Rule: "r"}, {Kind: kindAction, Subject: "s3", Data: []byte("c")}}
	if err := j.add(recs); err != nil {
		t.Fatal(err)
	}
	if err := j.done(recs[0].ID, func() []jrecord { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := openJournal(dir); err == nil || !strings.Contains(err.Error(), "in use by another analyzer") {
		t.Fatalf("a second open of a journal in use: %v", err)
	}
	// A crash: the file as it is, plus a torn last line.
	if err := j.w.Flush(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, `{"id":9,"kind":"alert","subj`)
	f.Close()
	j.f.Close() // releases the lock, as the kernel does for a dead process

	j2, pending, bad, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.close()
	if bad != 1 || len(pending) != 2 || pending[0].Subject != "" || pending[0].FP != "fp" || pending[1].Subject != "s3" {
		t.Fatalf("replayed %+v (bad lines %d), want the state and the action", pending, bad)
	}
	if j2.next <= recs[2].ID {
		t.Errorf("next id %d reuses an id of the journal (last %d)", j2.next, recs[2].ID)
	}
	// Both done: the journal is emptied.
	for _, r := range pending {
		if err := j2.done(r.ID, func() []jrecord { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, JournalFile)); err != nil || fi.Size() != 0 {
		t.Errorf("journal with nothing waiting: %v %v", fi, err)
	}
}

func TestJournalCompacts(t *testing.T) {
	dir := t.TempDir()
	j, _, _, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	keep := &jrecord{Kind: kindAlert, Subject: "keep", Data: []byte("k")}
	if err := j.add([]*jrecord{keep}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<10)
	for i := 0; ; i++ {
		r := &jrecord{Kind: kindAlert, Subject: "churn", Data: big}
		if err := j.add([]*jrecord{r}); err != nil {
			t.Fatal(err)
		}
		before := j.size
		if err := j.done(r.ID, func() []jrecord { return []jrecord{*keep} }); err != nil {
			t.Fatal(err)
		}
		if j.size < before {
			break // compacted
		}
		if i > 2*compactAt/len(big) {
			t.Fatalf("the journal grew to %d bytes and never compacted", j.size)
		}
	}
	if j.size > 1024 {
		t.Fatalf("journal %d bytes after compaction, want only the waiting change", j.size)
	}
	j.close()
	_, pending, _, err := openJournal(dir)
	if err != nil || len(pending) != 1 || pending[0].Subject != "keep" {
		t.Fatalf("after compaction: %+v %v", pending, err)
	}
}
