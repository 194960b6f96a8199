package quality

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPerMetric(t *testing.T) {
	dir := t.TempDir()
	ds := synthetic() // machine m<i> has its anomaly in metric i, rows 300-329
	for _, m := range ds.Machines {
		d := m.Name[1:] // "0" or "1": dimension index 0-based
		n := map[string]string{"0": "1", "1": "2"}[d]
		if err := os.WriteFile(filepath.Join(dir, m.Name+".txt"), []byte("300-330:"+n+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pm, err := PerMetric(ds, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.Machines) != 6 {
		t.Fatalf("%d series", len(pm.Machines))
	}
	for i, m := range pm.Machines {
		has := slices.Contains(m.Labels, true)
		if want := i == 0 || i == 4; has != want || len(m.Test) != 1 {
			t.Errorf("series %s: labelled %v, want %v", m.Name, has, want)
		}
	}
	if _, err := PerMetric(ds, t.TempDir()); err == nil {
		t.Error("missing interpretation files: no error")
	}
}
