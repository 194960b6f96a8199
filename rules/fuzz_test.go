package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: rule files are written by people and reloaded on SIGHUP; no
// input may panic the parser or the validation.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("default", "*.yaml"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("groups: [{name: g, rules: [{alert: A, signal: s, stat: rate, detector: {type: threshold, op: '>', value: 1}}]}]"))
	f.Add([]byte("groups:\n  - name: x\n    rules: {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse("fuzz.yaml", data)
	})
}
