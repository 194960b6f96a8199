package collector

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/mciv/mciv/internal/lab/testenv"
	"github.com/mciv/mciv/internal/wire"
)

// TestTCPSignalsEndToEnd causes real resets, connect errors, connects
// and round trips on loopback and checks that each shows up in the
// batches with the right labels: once with the collector's choice of hooks
// (tp_btf where it can) and once with classic tracepoints only.
func TestTCPSignalsEndToEnd(t *testing.T) {
	requireKernel(t)
	testenv.ExclusiveKernel(t)
	eachWay(t, "tcp", func(t *testing.T, _ string, edit func([]object) []object) {
		r := runKernelCollector(t, Config{}, edit)
		r.requireAttached(t, "tcp_send_reset", "tcp_receive_reset", "inet_sock_set_state", "tcp_probe")
		testTCPSignals(t, r)
	})
}

func testTCPSignals(t *testing.T, r *running) {
	// A closed port: the kernel answers the SYN with a reset (sent, no
	// socket), the client receives it and its connect fails.
	closed := freePort(t)
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(closed)), 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d unexpectedly open", closed)
	}
	// An open port: a connect, then round trips.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := ln.Addr().(*net.TCPAddr).Port
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for i := range 20 {
		if _, err := fmt.Fprintf(c, "ping %02d\n", i); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:8]); err != nil {
			t.Fatal(err)
		}
	}

	closedPeer := fmt.Sprintf("127.0.0.1:%d", closed)
	openPeer := fmt.Sprintf("127.0.0.1:%d", open)
	want := []string{
		"tcp_connect_errors_total{peer=" + closedPeer + ",}",
		"tcp_resets_total{direction=received,local_port=*,peer=" + closedPeer + ",}",
		"tcp_resets_total{direction=sent,local_port=" + strconv.Itoa(closed) + ",peer=*,}",
		"tcp_connect_seconds{peer=" + openPeer + ",}",
		"tcp_rtt_seconds{peer=127.0.0.1,}",
	}
	sum := r.collectSeries(t, 20*time.Second, want...)
	for _, w := range want {
		s := findSeries(sum, w)
		switch s.Kind {
		case wire.KindCounter:
			if s.Value < 1 {
				t.Errorf("%s = %v", w, s.Value)
			}
		case wire.KindHistogram:
			if s.Hist.Count < 1 || !(s.Hist.Sum > 0) || len(s.Hist.Buckets) == 0 {
				t.Errorf("%s = %+v", w, s.Hist)
			}
			if s.Hist.Sum > float64(s.Hist.Count) {
				t.Errorf("%s: mean over a second on loopback: %+v", w, s.Hist)
			}
		}
		t.Logf("%s: value %v hist %+v", w, s.Value, s.Hist)
	}
	// Both resets are events too.
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for !seen["sent"] || !seen["received"] {
		select {
		case e := <-r.events:
			if e.Kind == eventKindReset && (e.Labels["peer"] == closedPeer || e.Labels["local"] == closedPeer) {
				seen[e.Labels["direction"]] = true
			}
		case <-deadline:
			t.Fatalf("reset events seen: %v", seen)
		}
	}
}

// findSeries finds a series by "signal{name=value,...}" where a value of
// * matches any value.
// collectSeries collects batches until a series matches each of the
// patterns (see matchPattern), or fails t after timeout.
func (r *running) collectSeries(t *testing.T, timeout time.Duration, patterns ...string) map[string]*wire.Series {
	t.Helper()
	return r.collect(t, timeout, func(sum map[string]*wire.Series) bool {
		for _, p := range patterns {
			if findSeries(sum, p) == nil {
				return false
			}
		}
		return true
	})
}

func findSeries(sum map[string]*wire.Series, pattern string) *wire.Series {
	for k, s := range sum {
		if matchPattern(pattern, k) {
			return s
		}
	}
	return nil
}

// matchPattern matches k against pattern, where * matches up to the next
// comma.
func matchPattern(pattern, k string) bool {
	for pattern != "" {
		if pattern[0] == '*' {
			pattern = pattern[1:]
			for k != "" && k[0] != ',' {
				k = k[1:]
			}
			continue
		}
		if k == "" || k[0] != pattern[0] {
			return false
		}
		pattern, k = pattern[1:], k[1:]
	}
	return k == ""
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}
