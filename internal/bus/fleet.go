package bus

import (
	"time"

	"github.com/mciv/mciv/internal/yamltime"
)

// Fleet is the part of the `nats:` section that shapes mciv's streams and
// buckets on a NATS cluster.
type Fleet struct {
	// Replicas of every stream and bucket; 0: 3 on a cluster of three or
	// more servers, 1 on a single server (the embedded one).
	Replicas int `yaml:"replicas"`
	// Partitions of the input stream MCIV_IN (0: DefaultPartitions).
	Partitions int `yaml:"partitions"`
	// InputMaxAge bounds how long batches stay in MCIV_IN (0: 1h): the
	// longest warm-up a new partition owner can replay.
	InputMaxAge yamltime.Duration `yaml:"input_max_age"`
	// InputMaxBytes bounds MCIV_IN's size (0: 256 MiB, a quarter of the
	// embedded server's default store; a fleet sets it from its hosts).
	InputMaxBytes int64 `yaml:"input_max_bytes"`
}

// InputOptions are the input stream options of f, with replicas chosen
// by the caller (see Replicas).
func (f Fleet) InputOptions(replicas int) InputOptions {
	return InputOptions{
		Partitions: f.Partitions,
		Replicas:   replicas,
		MaxAge:     time.Duration(f.InputMaxAge),
		MaxBytes:   f.InputMaxBytes,
	}
}
