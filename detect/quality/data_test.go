package quality

import (
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeGz(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeGz(t, filepath.Join(dir, "a_train.csv.gz"), "m0,m1\n0.1,0.2\n0.3,0.4\n0.5,0.6\n")
	writeGz(t, filepath.Join(dir, "a_test.csv.gz"), "m0,m1\n0.1,0.2\n0.9,0.4\n")
	writeGz(t, filepath.Join(dir, "a_test_label.csv.gz"), "label\n0\n1\n")
	ds, err := Load("X", dir, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	m := ds.Machines[0]
	if len(ds.Machines) != 1 || m.Name != "a" || len(m.Train) != 2 || len(m.Train[0]) != 3 || m.Test[0][1] != 0.9 || !m.Labels[1] || m.Labels[0] {
		t.Fatalf("dataset %+v", ds)
	}
	writeGz(t, filepath.Join(dir, "b_train.csv.gz"), "m0\n0.1\n")
	writeGz(t, filepath.Join(dir, "b_test.csv.gz"), "m0\nx\n")
	writeGz(t, filepath.Join(dir, "b_test_label.csv.gz"), "label\n0\n")
	if _, err := Load("X", dir, time.Minute); err == nil || !strings.Contains(err.Error(), "b_test.csv.gz:2") {
		t.Fatalf("bad value: error %v", err)
	}
	if _, err := Load("X", t.TempDir(), time.Minute); err == nil {
		t.Fatal("empty directory: no error")
	}
}

func TestDataDirEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MCIV_DATA", dir)
	if got, err := DataDir(); err != nil || got != dir {
		t.Fatalf("DataDir() = %q, %v", got, err)
	}
	t.Setenv("MCIV_DATA", filepath.Join(dir, "missing"))
	if _, err := DataDir(); err == nil {
		t.Fatal("missing MCIV_DATA: no error")
	}
}
