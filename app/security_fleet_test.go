package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer"
	"github.com/mciv/mciv/app/config"
	"github.com/mciv/mciv/collector"
	"github.com/mciv/mciv/internal/auth"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// fleetLab is the trust lab with a partitioned analyzer (fleet mode): it
// reads the input stream MCIV_IN through its partitions' consumers.
func fleetLab(t *testing.T) *trustLab {
	return startTrustLab(t, func(c *config.Config) {
		c.Analyzer.Partitioned = true
		c.NATS.Partitions = 4
		c.NATS.InputMaxBytes = 8 << 20 // within the lab account's 64 MiB
	})
}

// waitInputStream waits until the fleet analyzer made the input stream,
// looked up with c's credentials.
func waitInputStream(t *testing.T, c *roleConn) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err := c.js.Stream(ctx, bus.InputStream)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("input stream %s: %v", bus.InputStream, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSecurityFleetRoles: with nats.auth on, a partitioned analyzer runs
// on its own credentials (input stream, partition consumers in their
// priority group, checkpoints and heartbeats) and a collector publishes
// its batches into MCIV_IN through JetStream on its own credentials: a
// rule fires end to end. The same collector cannot publish for another
// host, nor read the input stream, nor touch the partitions bucket.
func TestSecurityFleetRoles(t *testing.T) {
	l := fleetLab(t)
	col := l.connect(t, auth.Collector, "db-1")
	waitInputStream(t, col)

	// Positive control: the collector's stream publisher, as `mciv
	// collector` runs it on a fleet, stores batches acknowledged on its
	// inbox, and the partitioned analyzer's alert reaches the console.
	sp, err := collector.NewStreamPublisher(col.js, collector.StreamPublisherConfig{Timeout: 2 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = sp.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for seq := uint64(1); ; seq++ {
		if err := sp.PublishID(wire.SamplesSubject(labCluster, "db-1"), batch("db-1", seq, 50), fmt.Sprintf("%s.db-1.run1.%d", labCluster, seq)); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(l.console.String(), "db-1") {
			break
		}
		if seq > 150 {
			t.Fatalf("no alert on the console after %d batches from db-1 (stream publisher %+v); console: %q", seq, sp.Stats(), l.console.String())
		}
		time.Sleep(200 * time.Millisecond) // pacing the collector's interval, not a timing assertion
	}
	if st := sp.Stats(); st.Published == 0 {
		t.Fatalf("the stream publisher stored nothing: %+v", st)
	}

	// The analyzer did its fleet work with its own credentials: the
	// partition consumers exist and the bucket holds a checkpoint and
	// its heartbeat.
	obs := l.admin(t)
	in, err := obs.js.Stream(t.Context(), bus.InputStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Consumer(t.Context(), analyzer.PartitionDurablePrefix+"0"); err != nil {
		t.Errorf("partition consumer 0: %v", err)
	}
	kv, err := obs.js.KeyValue(t.Context(), analyzer.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kv.Keys(t.Context())
	var ck, hb bool
	for _, k := range keys {
		ck = ck || strings.HasPrefix(k, "p")
		hb = hb || strings.HasPrefix(k, "m.")
	}
	if !ck || !hb {
		t.Errorf("partitions bucket keys %v: want a checkpoint (p<n>) and a heartbeat (m.<member>)", keys)
	}
	// ... and the detector snapshots: the analyzer stored some, and its
	// role may replace (purging the old chunks) and read them.
	for wait := time.Now().Add(20 * time.Second); ; {
		store, err := obs.js.ObjectStore(t.Context(), analyzer.DetectorsBucket)
		var objs []*jetstream.ObjectInfo
		if err == nil {
			objs, err = store.List(t.Context())
		}
		if err == nil && len(objs) > 0 {
			break
		}
		if time.Now().After(wait) {
			t.Errorf("detector snapshots stored by the analyzer: %d, %v", len(objs), err)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	an := l.connect(t, auth.Analyzer, "an-probe")
	if store, err := an.js.ObjectStore(t.Context(), analyzer.DetectorsBucket); err != nil {
		t.Errorf("the analyzer role binds the snapshot store: %v", err)
	} else {
		for _, v := range []string{"first", "second"} {
			if _, err := store.PutBytes(t.Context(), "probe", []byte(v)); err != nil {
				t.Errorf("the analyzer role puts a snapshot: %v", err)
			}
		}
		if got, err := store.GetBytes(t.Context(), "probe"); err != nil || string(got) != "second" {
			t.Errorf("the analyzer role reads a snapshot: %q, %v", got, err)
		}
	}

	// Attacks with the collector's credentials.
	col.refused(t, wire.SamplesSubject(labCluster, "db-2"), batch("db-2", 1, 100))
	col.refused(t, wire.EventsSubject(labCluster, "db-2"), []byte(`{}`))
	pctx, pcancel := context.WithTimeout(t.Context(), time.Second)
	if _, err := col.js.Publish(pctx, wire.SamplesSubject(labCluster, "db-2"), batch("db-2", 2, 100)); err == nil {
		t.Error("a JetStream publish for db-2 was acknowledged")
	}
	pcancel()
	cctx, ccancel := context.WithTimeout(t.Context(), 2*time.Second)
	if _, err := col.js.OrderedConsumer(cctx, bus.InputStream, jetstream.OrderedConsumerConfig{}); err == nil {
		t.Error("the collector created a consumer of the input stream")
	}
	ccancel()
	col.wantDeniedMatch(t, "publish", func(s string) bool {
		return strings.HasPrefix(s, "$JS.API.CONSUMER.CREATE."+bus.InputStream+".")
	}, "$JS.API.CONSUMER.CREATE."+bus.InputStream+".*")
	col.refused(t, "$JS.API.STREAM.MSG.GET."+bus.InputStream, []byte(`{"seq":1}`))
	col.refused(t, "$JS.API.DIRECT.GET."+bus.InputStream, []byte(`{"seq":1}`))
	col.refused(t, "$JS.API.CONSUMER.MSG.NEXT."+bus.InputStream+"."+analyzer.PartitionDurablePrefix+"0", []byte(`{"batch":1}`))
	col.refused(t, "$KV."+analyzer.CheckpointBucket+".p0", []byte(`{}`))

	// No client role deletes, purges or reconfigures the fleet's stream
	// and buckets beyond its own (the analyzer updates MCIV_IN).
	for _, r := range []auth.Role{auth.Collector, auth.Analyzer, auth.Notifier, auth.Actuator, auth.Operator, auth.Steer, auth.SteerController} {
		c := l.connect(t, r, "f-"+string(r))
		for _, s := range []string{bus.InputStream, "KV_" + analyzer.CheckpointBucket, "KV_" + auth.RoutesBucket} {
			c.refused(t, "$JS.API.STREAM.DELETE."+s, nil)
			c.refused(t, "$JS.API.STREAM.PURGE."+s, nil)
		}
		if r != auth.Analyzer {
			c.refused(t, "$JS.API.STREAM.UPDATE."+bus.InputStream, []byte(`{}`))
			c.refused(t, "$KV."+analyzer.CheckpointBucket+".m.forged", []byte(`{}`))
		}
		if r != auth.SteerController {
			c.refused(t, "$KV."+auth.RoutesBucket+".pay-rw", []byte(`{}`))
		}
	}

	// Nothing stored names db-2.
	info, err := in.Info(t.Context(), jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	for subj := range info.State.Subjects {
		if strings.Contains(subj, "db-2") {
			t.Errorf("the input stream holds a forged subject %s", subj)
		}
	}
	if strings.Contains(l.console.String(), "db-2") {
		t.Errorf("an alert names db-2: %q", l.console.String())
	}
}
