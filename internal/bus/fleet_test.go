package bus

import (
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"strings"
)

func TestFleetSectionInline(t *testing.T) {
	var s Section
	dec := yaml.NewDecoder(strings.NewReader("url: nats://a:4222,nats://b:4222\nreplicas: 3\npartitions: 8\ninput_max_age: 30m\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	o := s.InputOptions(3)
	if s.URL == "" || o.Replicas != 3 || o.Partitions != 8 || o.MaxAge != 30*time.Minute {
		t.Fatalf("%+v %+v", s, o)
	}
	if Replicas(5, nil) != 5 || Replicas(0, nil) != 1 {
		t.Fatal("Replicas")
	}
	cfg := InputStreamConfig(InputOptions{})
	if cfg.Replicas != 1 || cfg.MaxBytes != DefaultInputMaxBytes || cfg.MaxAge != DefaultInputMaxAge {
		t.Fatalf("defaults: %+v", cfg)
	}
}
