package bus

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mciv/mciv/internal/wire"
)

// InputStream is the JetStream stream that stores every host's sample
// batches and events, each under a subject that starts with its partition
// number: "<p>.mciv.samples.<cluster>.<host>". The server computes p
// with a deterministic hash of cluster and host ({{partition(n,2,3)}} in
// the stream's subject transform), so a host's samples and events always
// land in the same partition and meet the same analyzer.
const InputStream = "MCIV_IN"

// Defaults of InputOptions.
const (
	DefaultPartitions    = 16
	DefaultInputMaxAge   = time.Hour
	DefaultInputDedup    = 2 * time.Minute
	DefaultInputMaxBytes = 256 << 20
)

// InputOptions shapes the input stream.
type InputOptions struct {
	// Partitions is the number of partitions (DefaultPartitions when
	// zero). Changing it reshuffles hosts between partitions.
	Partitions int
	// Replicas is the replication factor (1 when zero).
	Replicas int
	// MaxAge bounds how long batches are kept: the longest warm-up a new
	// partition owner can replay (DefaultInputMaxAge when zero).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest batches go first
	// (DefaultInputMaxBytes when zero, negative: unlimited).
	MaxBytes int64
}

func (o InputOptions) withDefaults() InputOptions {
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultInputMaxAge
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultInputMaxBytes
	}
	return o
}

// InputStreamConfig is the configuration of the input stream for opts.
func InputStreamConfig(opts InputOptions) jetstream.StreamConfig {
	opts = opts.withDefaults()
	return jetstream.StreamConfig{
		Name:        InputStream,
		Description: "mciv sample batches and events, partitioned by cluster and host",
		Subjects:    []string{wire.SamplesPrefix + ".*.*", wire.EventsPrefix + ".*.*"},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      "mciv.*.*.*",
			Destination: fmt.Sprintf("{{partition(%d,2,3)}}.mciv.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}", opts.Partitions),
		},
		Storage:    jetstream.FileStorage,
		Replicas:   opts.Replicas,
		MaxAge:     opts.MaxAge,
		MaxBytes:   opts.MaxBytes,
		Discard:    jetstream.DiscardOld,
		Duplicates: DefaultInputDedup,
	}
}

// EnsureInputStream creates or updates the input stream; calling it from
// every analyzer at start is safe.
func EnsureInputStream(ctx context.Context, js jetstream.JetStream, opts InputOptions) (jetstream.Stream, error) {
	return EnsureStream(ctx, js, InputStreamConfig(opts))
}

// PartitionFilter is the subject filter of partition p in the input stream.
func PartitionFilter(p int) string { return strconv.Itoa(p) + ".>" }

// SplitPartition splits a subject of the input stream into its partition
// and the subject the host published on.
func SplitPartition(subject string) (p int, original string, err error) {
	head, rest, ok := strings.Cut(subject, ".")
	if !ok {
		return 0, "", fmt.Errorf("subject %q has no partition token", subject)
	}
	p, err = strconv.Atoi(head)
	if err != nil || p < 0 {
		return 0, "", fmt.Errorf("subject %q: partition token %q is not a number", subject, head)
	}
	return p, rest, nil
}

// Replicas is the replication factor to use for streams and buckets:
// configured when positive, else 3 when nc is connected to a cluster of at
// least three servers, else the cluster's size, else 1 (a single server,
// such as the embedded one).
func Replicas(configured int, nc *nats.Conn) int {
	if configured > 0 {
		return configured
	}
	if nc == nil || nc.ConnectedClusterName() == "" {
		return 1
	}
	return max(1, min(3, len(nc.Servers())))
}

// PartitionOf is the partition of the input stream that the server's
// {{partition(n,2,3)}} transform gives cluster and host: FNV-1a (32 bit)
// of the two tokens concatenated, modulo n.
func PartitionOf(cluster, host string, n int) int {
	if n <= 0 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(cluster + host))
	return int(h.Sum32() % uint32(n))
}
