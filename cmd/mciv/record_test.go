package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mciv/mciv/analyzer/replay"
	"github.com/mciv/mciv/internal/bus"
	"github.com/mciv/mciv/internal/wire"
)

func TestRecordThenReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "test collector"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	out := filepath.Join(t.TempDir(), "samples.bin")
	recNC, err := bus.Connect(ctx, srv.URL(), bus.ConnectOptions{Name: "mciv-record"})
	if err != nil {
		t.Fatal(err)
	}
	defer recNC.Close()
	msgs, stop, err := subscribeSamples(ctx, recNC, wire.SamplesWildcard)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for seq := range 12 {
		v := 0.0
		if seq < 6 {
			v = 20
		}
		b := wire.EncodeBatch(&wire.Batch{Cluster: "c", Host: "db-1", Seq: uint64(seq), Start: t0.Add(time.Duration(seq) * time.Second),
			Interval: time.Second, Series: []wire.Series{{Signal: "tcp_retransmits_total", Kind: wire.KindCounter, Value: v}}})
		if err := nc.Publish(wire.SamplesSubject("c", "db-1"), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	recvAt := t0.Add(time.Hour)
	n, err := recordFrom(ctx, msgs, replay.NewRecorder(f), 12, func() time.Time { return recvAt })
	if err != nil || n != 12 {
		t.Fatalf("recorded %d: %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	o, code := run(t, "replay", "--rules", "../../rules/default", "--samples", out, "--jsonl")
	if code != 0 {
		t.Fatalf("replay exit %d: %s", code, o)
	}
	if !strings.Contains(o, `{"transition":"firing","rule":"TCPRetransmitRateHigh"`) ||
		!strings.Contains(o, `{"transition":"resolved","rule":"TCPRetransmitRateHigh"`) {
		t.Fatalf("replay output: %s", o)
	}
}

func TestRecordCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	out := filepath.Join(t.TempDir(), "empty.bin")
	o, code := run(t, "record", "--nats", srv.URL(), "--out", out, "--duration", "200ms")
	if code != 0 || !strings.Contains(o, "recorded 0 messages") {
		t.Fatalf("exit %d: %s", code, o)
	}
	if o, code := run(t, "replay", "--samples", out, "--jsonl"); code != 0 || strings.Contains(o, "transition") {
		t.Fatalf("replay of an empty recording: %d %s", code, o)
	}
	if o, code := run(t, "record", "--nats", srv.URL()); code == 0 || !strings.Contains(o, "--out") {
		t.Fatalf("without --out: %d %s", code, o)
	}
}
