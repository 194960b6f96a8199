package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mciv/mciv/internal/wire"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    wire.Alert
		want string
	}{
		{
			name: "firing with summary",
			a: wire.Alert{
				Rule: "TCPRetransmitRateHigh", State: wire.StateFiring,
				Labels:      map[string]string{"cluster": "default", "host": "db-1"},
				Annotations: map[string]string{"summary": "TCP retransmits on db-1 at 12.3/s", "description": "ignored"},
				Value:       12.3, Threshold: 5,
			},
			want: "FIRING   TCPRetransmitRateHigh cluster=default host=db-1 value=12.3 threshold=5 — TCP retransmits on db-1 at 12.3/s",
		},
		{
			name: "resolved, severity first, other labels sorted, description fallback",
			a: wire.Alert{
				Rule: "QueryLatencyAnomaly", State: wire.StateResolved,
				Labels:      map[string]string{"instance": "main", "host": "db-2", "severity": "critical", "cluster": "payments", "alertgroup": "postgres"},
				Annotations: map[string]string{"description": "p99 back\nto normal"},
				Value:       0.30000000000000004, Threshold: 0.25,
			},
			want: "RESOLVED QueryLatencyAnomaly severity=critical cluster=payments host=db-2 alertgroup=postgres instance=main value=0.3 threshold=0.25 — p99 back to normal",
		},
		{
			name: "no labels, no annotations, odd values",
			a:    wire.Alert{Rule: "HostSilent", State: wire.StateFiring, Value: 1.5e6, Threshold: 0},
			want: "FIRING   HostSilent value=1.5e+06 threshold=0",
		},
		{
			name: "label values that need quoting",
			a: wire.Alert{
				Rule: "DiskSlow", State: wire.StateFiring,
				Labels: map[string]string{"host": "db 3", "device": ""},
				Value:  2, Threshold: 1,
			},
			want: `FIRING   DiskSlow host="db 3" device="" value=2 threshold=1`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Format(&tc.a); got != tc.want {
				t.Errorf("Format =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestNotifyWritesWholeLinesConcurrently(t *testing.T) {
	var buf bytes.Buffer
	n := New(&buf)
	if n.Name() != "console" {
		t.Fatalf("Name = %q", n.Name())
	}
	const writers = 32
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			a := &wire.Alert{Rule: fmt.Sprintf("R%d", i), State: wire.StateFiring, Labels: map[string]string{"host": "db-1"}}
			if err := n.Notify(context.Background(), a); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != writers {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), writers, buf.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "FIRING   R") || !strings.HasSuffix(l, "host=db-1 value=0 threshold=0") {
			t.Errorf("mangled line %q", l)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestNotifyErrors(t *testing.T) {
	a := &wire.Alert{Rule: "R", State: wire.StateFiring}
	err := New(failingWriter{}).Notify(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "console") {
		t.Fatalf("err = %v, want a wrapped write error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var buf bytes.Buffer
	if err := New(&buf).Notify(ctx, a); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v with a cancelled context", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("wrote %q with a cancelled context", buf.String())
	}
}
