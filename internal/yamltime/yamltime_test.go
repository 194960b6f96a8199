package yamltime

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDurationYAML(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 1m30s\n"), &v); err != nil || v.D.D() != 90*time.Second {
		t.Fatalf("got %v %v", v.D.D(), err)
	}
	err := yaml.Unmarshal([]byte("x: 1\nd: soon\n"), &v)
	if err == nil || !strings.Contains(err.Error(), "line 2:4") {
		t.Fatalf("error %v does not name line 2:4", err)
	}
	out, err := yaml.Marshal(v)
	if err != nil || !strings.Contains(string(out), "d: 1m30s") {
		t.Fatalf("marshal: %s %v", out, err)
	}
}
